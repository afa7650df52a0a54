"""The named constructs the stack is composed of."""
