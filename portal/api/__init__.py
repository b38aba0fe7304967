"""The service API: clients authenticated by API keys push clips in and pull corrections out."""
