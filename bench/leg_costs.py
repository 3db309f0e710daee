"""Turns a running gateway's Envoy config dump into a static Envoy bootstrap on port 28091,
with the ext_proc legs cut down as a variant names (see leg_costs.sh).

Variant words, joined with `_`: `noup` drops the upstream leg; for the router leg,
`norespbody` stops its response body, `noresp` its response headers and body, `noresph` its
response headers only, `nobody` its request body; `noext` drops both legs (plain Envoy with the
same routes, clusters and Envoy filters). The extproc's per-request mode overrides can turn a
stopped phase back on; leg_costs.sh prints the messages Envoy sent per request.
"""
import json
import sys

import yaml

GATEWAY_PORT, STATIC_PORT, ADMIN_PORT = 28090, 28091, 29912


def walk(node, visit):
    if isinstance(node, dict):
        visit(node)
        for value in list(node.values()):
            walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            walk(value, visit)


def main(dump_path, variant):
    words = set(variant.split("_"))
    dump = json.load(open(dump_path))
    by_type = {c["@type"].rsplit(".", 1)[-1]: c for c in dump["configs"]}
    clusters_dump = by_type["ClustersConfigDump"]
    clusters = [c["cluster"] for c in clusters_dump.get("dynamic_active_clusters", [])]
    clusters += [c["cluster"] for c in clusters_dump.get("static_clusters", [])]
    endpoints = {
        e["endpoint_config"]["cluster_name"]: e["endpoint_config"]
        for e in by_type.get("EndpointsConfigDump", {}).get("dynamic_endpoint_configs", [])
    }
    routes = {
        r["route_config"]["name"]: r["route_config"]
        for r in by_type["RoutesConfigDump"].get("dynamic_route_configs", [])
    }
    secrets = [
        dict(s["secret"], name=s["name"])
        for s in by_type.get("SecretsConfigDump", {}).get("dynamic_active_secrets", [])
    ]
    for cluster in clusters:
        if cluster.get("type") == "EDS":
            cluster["type"] = "STATIC"
            cluster.pop("eds_cluster_config", None)
            assignment = endpoints[cluster["name"]]
            assignment.pop("@type", None)
            cluster["load_assignment"] = assignment
    listeners = [
        l["active_state"]["listener"]
        for l in by_type["ListenersConfigDump"]["dynamic_listeners"]
        if l["active_state"]["listener"]["address"]["socket_address"]["port_value"] == GATEWAY_PORT
    ]

    def inline_routes(node):
        if "rds" in node:
            node["route_config"] = routes[node.pop("rds")["route_config_name"]]
            node["route_config"].pop("@type", None)

    def cut(node):
        name = node.get("name", "")
        if "extproc." not in name or "typed_config" not in node:
            return
        config = node["typed_config"]
        if "extension_config" in config:  # the upstream leg behind a matcher
            config = config["extension_config"]["typed_config"]
        if "upstream" in name and words & {"noup", "noext"}:
            node["drop"] = True
        if "router" in name:
            if "noext" in words:
                node["drop"] = True
            mode = config["processing_mode"]
            if "noresp" in words:
                mode["response_header_mode"] = "SKIP"
                mode["response_body_mode"] = "NONE"
            if "norespbody" in words:
                mode["response_body_mode"] = "NONE"
            if "noresph" in words:
                mode["response_header_mode"] = "SKIP"
            if "nobody" in words:
                mode["request_body_mode"] = "NONE"

    def drop(node):
        for key, value in list(node.items()):
            if isinstance(value, list):
                node[key] = [v for v in value if not (isinstance(v, dict) and v.get("drop"))]

    for listener in listeners:
        listener["address"]["socket_address"]["port_value"] = STATIC_PORT
        walk(listener, inline_routes)
    for resource in listeners + clusters + secrets:
        resource.pop("@type", None)
    walk(listeners, cut)
    walk(clusters, cut)
    walk(listeners, drop)
    walk(clusters, drop)
    # The dump redacts secrets; the benchmark's upstream does not check the key.
    walk(secrets, lambda n: n.update(inline_string="redacted") if "inline_string" in n else None)
    bootstrap = {
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": secrets},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
    }
    # The SDS references become static ones.
    walk(bootstrap, lambda n: n.pop("sds_config", None) if "sds_config" in n else None)
    print(yaml.safe_dump(bootstrap))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
