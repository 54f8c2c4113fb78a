"""The default ``direct`` transport never imports the ``openai`` SDK (nor its HTTP library).

``openai`` takes about a second to import and is needed only by the SDK transports; the direct
path maps its own errors. Checked in a fresh interpreter, since this test process has long since
imported ``openai`` for the SDK transport tests.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.judge_server import JudgeServer, Reply

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json, sys
from rm_service.models import JudgeConnectionError, JudgeHTTPError
from rm_service.models._openai import OpenAIChatModel

ASK = [{"role": "user", "content": "Rate: 2+2=4"}]

async def main(base_url, refused_url):
    kw = dict(api_key="sk-test", timeout=2.0, max_retries=0, transport="direct")
    model = OpenAIChatModel("judge", base_url=base_url, **kw)
    out = {"text": (await model.achat(ASK)).text}
    try:
        await model.achat(ASK)
    except JudgeHTTPError as exc:
        out["status"] = exc.status
    try:
        await OpenAIChatModel("judge", base_url=refused_url, **kw).achat(ASK)
    except JudgeConnectionError:
        out["refused"] = True
    await model.aclose()
    out["loaded"] = sorted(m for m in ("openai", "httpx2") if m in sys.modules)
    return out

print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
"""


def test_the_direct_transport_does_not_import_openai() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with JudgeServer() as server:
        server.script(Reply("fine"), Reply.error(400, "nope"))
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, server.base_url, refused],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"text": "fine", "status": 400, "refused": True, "loaded": []}
