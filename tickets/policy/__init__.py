"""The shop's policy: its rules (windows, reasons, routing, clocks), eligibility
and risk."""
