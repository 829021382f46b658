"""Service-level clocks: the clocks on a case, the business calendar and the sweep."""
