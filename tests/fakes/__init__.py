"""Fakes over real sockets for the end-to-end test and the benchmarks: a Telegram Bot API
server (bot_api), customers who talk to the bot through it (customers) and the real
`aftersales serve` process started and killed around them (serve)."""
