"""The official OpenAI Python SDK as a gateway client, for the e2e tests.

    client.py --base-url http://127.0.0.1:PORT/v1 --model M [--header K:V] SCENARIO[:MODEL] [...]

Scenarios: chat, chat-stream (no stream_options), chat-stream-usage
(stream_options={"include_usage": True}), chat-tools and chat-stream-tools (a get_weather tool
offered; the stream asks for usage), completions, embeddings, models; `:MODEL` overrides
--model for that scenario.

Prints one JSON object per scenario on stdout, in order: {"scenario", "ok": true, ...results}
or {"scenario", "ok": false, "error": {...}} with what the SDK raised (a stream cut mid-way
also reports what arrived before the cut). Exits 1 when any scenario failed. The SDK does no
retries, so every scenario is exactly one HTTP request.
"""

import argparse
import json
import sys

import openai
from openai import OpenAI

CLIENT_KEY = "client-key-must-not-leak"


def usage_dict(usage):
    return None if usage is None else usage.model_dump(exclude_none=True)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}


def chat(client, model, tools=False):
    extra = {"tools": [WEATHER_TOOL]} if tools else {}
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], **extra
    )
    message = r.choices[0].message
    return {
        "content": message.content,
        "finish_reason": r.choices[0].finish_reason,
        "model": r.model,
        "usage": usage_dict(r.usage),
        "tool_calls": [{"name": c.function.name, "arguments": c.function.arguments}
                       for c in message.tool_calls or []],
    }


def chat_stream(client, model, include_usage, tools=False):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    if tools:
        extra["tools"] = [WEATHER_TOOL]
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        **extra,
    )
    partial = {"content": "", "chunks": 0, "usage_chunks": [], "model": None,
               "finish_reason": None, "tool_calls": []}
    try:
        for chunk in stream:
            partial["chunks"] += 1
            partial["model"] = chunk.model
            if chunk.usage is not None:
                partial["usage_chunks"].append(usage_dict(chunk.usage))
            for choice in chunk.choices:
                partial["content"] += choice.delta.content or ""
                partial["finish_reason"] = choice.finish_reason or partial["finish_reason"]
                for call in choice.delta.tool_calls or []:
                    calls = partial["tool_calls"]
                    while len(calls) <= call.index:
                        calls.append({"name": "", "arguments": ""})
                    if call.function is not None:
                        calls[call.index]["name"] += call.function.name or ""
                        calls[call.index]["arguments"] += call.function.arguments or ""
    except Exception as e:  # noqa: BLE001 - reported to the test with what arrived
        e.partial = partial
        raise
    return partial


def completions(client, model):
    r = client.completions.create(model=model, prompt="Tell me a story")
    return {"text": r.choices[0].text, "model": r.model, "usage": usage_dict(r.usage)}


def embeddings(client, model):
    # Without encoding_format the SDK asks for base64 and decodes it, as users get by default.
    r = client.embeddings.create(model=model, input="embed me")
    return {"embedding": list(r.data[0].embedding), "model": r.model,
            "usage": usage_dict(r.usage)}


def models(client, _model):
    page = client.models.list()
    return {"models": [{"id": m.id, "owned_by": m.owned_by, "created": m.created,
                        "object": m.object} for m in page.data]}


SCENARIOS = {
    "chat": chat,
    "chat-stream": lambda c, m: chat_stream(c, m, False),
    "chat-stream-usage": lambda c, m: chat_stream(c, m, True),
    "chat-tools": lambda c, m: chat(c, m, tools=True),
    "chat-stream-tools": lambda c, m: chat_stream(c, m, True, tools=True),
    "completions": completions,
    "embeddings": embeddings,
    "models": models,
}


def describe(e):
    out = {"type": type(e).__name__, "message": str(e)}
    if isinstance(e, openai.APIStatusError):
        out["status"] = e.status_code
        out["body"] = e.body
        out["content_type"] = e.response.headers.get("content-type")
        out["text"] = e.response.text
    if getattr(e, "partial", None) is not None:
        out["partial"] = e.partial
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default=CLIENT_KEY)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                        help="sent with every request (e.g. x-user-id:alice)")
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO[:MODEL]")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0,
                    timeout=args.timeout, default_headers=headers)
    runs = [arg.partition(":")[::2] for arg in args.scenarios]
    for name, _ in runs:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; one of {sorted(SCENARIOS)}")
    failed = False
    for name, model in runs:
        try:
            result = {"scenario": name, "ok": True,
                      **SCENARIOS[name](client, model or args.model)}
        except Exception as e:  # noqa: BLE001 - every SDK error is a result for the test
            failed = True
            result = {"scenario": name, "ok": False, "error": describe(e)}
        print(json.dumps(result), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
