"""Intent classification and sub-signal detection."""
