"""Templates and texts shipped with the product: the reply scripts (scripts/), the panel's
pages and catalogs (panel/), the agents' cards (agents/) and the policy's reasons (policy/).

A package only so that they install with the code and `importlib.resources` finds them
(tickets/bundled.py); there is no Python here.
"""
