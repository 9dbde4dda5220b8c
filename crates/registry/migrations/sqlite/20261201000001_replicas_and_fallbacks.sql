-- Replicas of a deployment beyond its first endpoint (JSON array of URLs), how requests are
-- spread over them, and each feature's ordered fallback deployments (JSON array of ids).
ALTER TABLE self_hosted_models ADD COLUMN replicas TEXT;
ALTER TABLE self_hosted_models ADD COLUMN routing TEXT;
ALTER TABLE feature_settings ADD COLUMN fallbacks TEXT;
