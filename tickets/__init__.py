"""The after-sales core: cases, orders, money, SLA clocks, policy and audit. No transport here."""
