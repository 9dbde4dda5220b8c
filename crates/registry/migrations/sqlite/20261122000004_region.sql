-- AWS Bedrock: the region a deployment is called in (NULL: AWS_REGION / AWS_REGION_NAME).
ALTER TABLE self_hosted_models ADD COLUMN region TEXT;
