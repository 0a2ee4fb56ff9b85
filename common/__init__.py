"""Mechanisms every service of the platform needs: codec, Kafka and MongoDB plumbing, settings,
logging, metrics, the working-day calendar and identifier checks. No service's domain lives here."""
