"""The app's model of a session: the backend it talks to and the traces it owns."""
