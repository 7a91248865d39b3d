"""Online feature store: customer value, churn and intent features served from Redis."""
