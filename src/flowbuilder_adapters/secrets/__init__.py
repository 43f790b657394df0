"""Secret stores: AES-256-GCM in the database, and AWS Secrets Manager."""
