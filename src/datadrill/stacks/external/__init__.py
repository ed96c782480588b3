"""Stacks on services datadrill does not own: an existing cluster or the compose stack."""
