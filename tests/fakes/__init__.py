"""Every fake of the tests. In process: Telegram at the bot's HTTP-session boundary, and a
customer or an agents' group talking to the real Dispatcher through it (telegram); clocks a
test moves itself, and an event loop on virtual time for pacing tests (clock). Over real
sockets, for the end-to-end test and the benchmarks: a Telegram Bot API server (bot_api),
customers who talk to the bot through it (customers) and the real `aftersales serve` process
started and killed around them (serve)."""
