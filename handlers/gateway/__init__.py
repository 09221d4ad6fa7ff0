"""The gateway's aiohttp transport: routes over app.gateway."""
