"""Connect-invoked extension lookups and the provider directory (DynamoDB) they read."""
