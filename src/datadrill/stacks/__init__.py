"""Stack backends: the running components and their endpoints."""
