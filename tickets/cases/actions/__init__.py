"""The handlers of the lifecycle's actions, one module per family."""
