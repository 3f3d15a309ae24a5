"""Drives dialtone's MCP server with the official MCP Python SDK.

Usage: drive.py PLAN_JSON

The plan says how to connect and what to do:
  {"transport": "stdio", "command": "...", "args": [...], "env": {...},
   or "transport": "http", "url": "...", "key": "...", "headers": {...},
   "mode": "legacy" | "auto",
   "steps": [{"op": "list_tools"} | {"op": "instructions"} |
             {"op": "call", "tool": "...", "args": {...},
              "token_from": <index of an earlier step>} |
             {"op": "request", "method": "DELETE", "url": "...", "key": "..."}]}
`token_from` takes the confirmation token a preview's text names. `request` makes a
plain HTTP request between MCP calls (e.g. revoking the key) and reports its status.
Prints one JSON document: {"protocol_version": ..., "results": [...]}, where each
call result is {"is_error", "text", "structured"}. The Rust tests make the asserts.
"""

import asyncio
import json
import re
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def dump(model):
    return json.loads(model.model_dump_json(by_alias=True, exclude_none=True))


async def run(plan):
    if plan["transport"] == "stdio":
        server = StdioServerParameters(
            command=plan["command"], args=plan.get("args", []), env=plan.get("env")
        )
        http = None
    else:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {plan['key']}", **plan.get("headers", {})},
            timeout=30,
        )
        server = streamable_http_client(plan["url"], http_client=http)
    results = []
    async with Client(server, mode=plan.get("mode", "auto"), cache=None) as client:
        for step in plan["steps"]:
            op = step["op"]
            if op == "list_tools":
                listed = await client.list_tools()
                results.append(dump(listed))
            elif op == "instructions":
                results.append({"instructions": client.instructions})
            elif op == "call":
                args = dict(step.get("args", {}))
                if "token_from" in step:
                    earlier = results[step["token_from"]]["text"]
                    found = re.search(r'confirmation_token="(cfm_[0-9]+_[0-9a-f]+)"', earlier)
                    args["confirmation_token"] = found.group(1) if found else "none"
                r = await client.call_tool(step["tool"], args)
                text = "".join(c.text for c in r.content if getattr(c, "text", None))
                results.append(
                    {
                        "is_error": bool(r.is_error),
                        "text": text,
                        "structured": r.structured_content,
                    }
                )
            elif op == "request":
                async with httpx2.AsyncClient(timeout=30) as plain:
                    resp = await plain.request(
                        step["method"],
                        step["url"],
                        headers={"Authorization": f"Bearer {step['key']}"},
                    )
                results.append({"status": resp.status_code})
        version = getattr(client.session, "protocol_version", None)
    if http is not None:
        await http.aclose()
    print(json.dumps({"protocol_version": str(version), "results": results}))


if __name__ == "__main__":
    asyncio.run(run(json.loads(sys.argv[1])))
