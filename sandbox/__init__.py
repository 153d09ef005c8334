"""The sandbox: emulators and a sample app that `release-bot demo` and the tests run against.

Emulators of Vercel, GitHub, PostHog and Supabase's Management API (aiohttp apps on loopback),
the sample staging app, launchers for a real PostgreSQL and redis-server, the workspace builder
with its app template, and the demo itself. It lives beside `bot/`, not in it: the bot's wheel
holds `bot` and `handlers` only, and `make install` puts this checkout on the venv's path so
`sandbox` imports from the repository. Nothing in `bot/` or `handlers/` imports it, except the
`demo` command's lazy import.
"""
