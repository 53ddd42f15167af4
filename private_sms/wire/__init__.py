"""What comes over the wire: request fields, Vonage's webhooks as values, and their signatures."""
