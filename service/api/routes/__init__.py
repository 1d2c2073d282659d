"""HTTP routes: thin, each one a query through the shared dependencies."""
