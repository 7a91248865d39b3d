"""Systems of record: tenants, customers and identities, orders, payments, interactions, issues."""
