"""The after-sales core: cases, orders, money, SLA clocks, policy and audit. No transport here.

`__version__` is the release's version, its one source: the package's metadata reads it at
build time (pyproject.toml, `[tool.setuptools.dynamic]`), the API's OpenAPI and
`aftersales --version` at run time. CHANGELOG.md says what each version brought.
"""

__version__ = "0.2.0"
