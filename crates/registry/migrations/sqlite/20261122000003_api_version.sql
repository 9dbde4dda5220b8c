-- Azure OpenAI: the API version a deployment is called with (NULL: Hearth's GA default; "v1":
-- the v1 API without a version).
ALTER TABLE self_hosted_models ADD COLUMN api_version TEXT;
