"""The official Anthropic Python SDK as a gateway client, for the e2e tests.

    anthropic_client.py --base-url http://127.0.0.1:PORT/anthropic --model M SCENARIO [...]

Scenarios: messages, messages-stream. Prints one JSON object per scenario on stdout, in order:
{"scenario", "ok": true, ...results} or {"scenario", "ok": false, "error": {...}}. Exits 1 when
any scenario failed. No retries: every scenario is exactly one HTTP request.
"""

import argparse
import json
import sys

import anthropic
from anthropic import Anthropic

CLIENT_KEY = "client-key-must-not-leak"


def messages(client, model):
    r = client.messages.create(
        model=model, max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    return {
        "text": "".join(b.text for b in r.content if b.type == "text"),
        "stop_reason": r.stop_reason,
        "model": r.model,
        "usage": {"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens},
    }


def messages_stream(client, model):
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    return {
        "text": text,
        "stop_reason": final.stop_reason,
        "usage": {"input_tokens": final.usage.input_tokens,
                  "output_tokens": final.usage.output_tokens},
    }


SCENARIOS = {"messages": messages, "messages-stream": messages_stream}


def describe(e):
    out = {"type": type(e).__name__, "message": str(e)}
    if isinstance(e, anthropic.APIStatusError):
        out["status"] = e.status_code
        out["body"] = e.body
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default=CLIENT_KEY)
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    client = Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=20.0)
    failed = False
    for name in args.scenarios:
        try:
            result = {"scenario": name, "ok": True, **SCENARIOS[name](client, args.model)}
        except Exception as e:  # noqa: BLE001 - every SDK error is a result for the test
            failed = True
            result = {"scenario": name, "ok": False, "error": describe(e)}
        print(json.dumps(result), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
