"""campaignsvc: the cold-outreach campaign service of a Telegram-first sales CRM."""

__version__ = "0.1.0"
SERVICE_NAME = "campaign-service"
