"""The Helm chart in deploy/helm/noetl-control-plane checked against the code it deploys.

No helm binary is available on the build machines, so the chart is rendered with deploy/render.py, a
small pure-Python renderer of the Go-template subset the chart is written in (see its docstring); the
rendered YAML is parsed with PyYAML. Expected values come from the code (settings groups, routes, the
CLI parser) and docs/configuration.md, not from lists repeated here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import NatsSettings, ServerSettings, WorkerSettings
from handlers.cli import build_parser
from handlers.http import health, internal_outbox

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "noetl-control-plane"
KIND_VALUES = CHART / "values-kind.yaml"

_spec = importlib.util.spec_from_file_location("noetl_deploy_render", ROOT / "deploy" / "render.py")
assert _spec and _spec.loader
render_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = render_mod
_spec.loader.exec_module(render_mod)

# The four platform secrets of the deployment specification's "Secrets handling" table.
PLATFORM_SECRETS = ("NOETL_ENCRYPTION_KEY", "POSTGRES_PASSWORD", "NATS_PASSWORD", "NOETL_INTERNAL_API_TOKEN")


# ------------------------------------------------------------------------------------------- helpers


def render(values: dict[str, Any] | None = None, files: list[Path] | None = None) -> list[dict[str, Any]]:
    vals = render_mod.load_values(files or [], CHART)
    if values:
        vals = render_mod.merge_values(vals, values)
    return [d for d in yaml.safe_load_all(render_mod.render(values=vals, chart_dir=CHART)) if d]


@pytest.fixture(scope="module", params=["default", "kind"])
def objs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(files=[KIND_VALUES] if request.param == "kind" else [])


@pytest.fixture(scope="module")
def default_objs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def kind_objs() -> list[dict[str, Any]]:
    return render(files=[KIND_VALUES])


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def by_name(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def component(o: dict[str, Any]) -> str:
    return str(o["metadata"]["labels"]["app.kubernetes.io/component"])


def workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Deployment", "Job")]


def container(o: dict[str, Any]) -> dict[str, Any]:
    containers = o["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = container(o).get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env in {o['metadata']['name']}: {names}"
    return {e["name"]: e for e in entries}


def literal_env(o: dict[str, Any], objs: list[dict[str, Any]]) -> dict[str, str]:
    """Env as the process sees it (ConfigMap via envFrom, then literal env entries)."""
    out: dict[str, str] = {}
    for src in container(o).get("envFrom", []):
        cm = by_name(objs, "ConfigMap", src["configMapRef"]["name"])
        out.update(cm["data"])
    out.update({k: e["value"] for k, e in env_of(o).items() if "value" in e})
    return out


def deployments(objs: list[dict[str, Any]], comp: str) -> list[dict[str, Any]]:
    return [o for o in of_kind(objs, "Deployment") if component(o) == comp]


def worker_pools(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["labels"]["noetl.io/worker-pool"]: o
        for o in of_kind(objs, "Deployment")
        if "noetl.io/worker-pool" in o["metadata"]["labels"]
    }


def _config_env_names() -> set[str]:
    """Every env var name given to `env(...)` in app/config/*.py (parsed, so new groups count too)."""
    names: set[str] = set()
    for path in (ROOT / "app" / "config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "env":
                names |= {
                    a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                }
    return names


def _documented_env_names() -> set[str]:
    """Backticked upper-case names in the first column of docs/configuration.md's tables."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


KNOWN_ENV = _config_env_names() | _documented_env_names()


def _secret_field_env_names() -> set[str]:
    """Env names of settings fields marked repr=False (the code's own notion of a secret)."""
    out: set[str] = set()
    from app.config import DatabaseSettings, ProviderSettings, SecretsSettings

    for cls in (
        ServerSettings,
        DatabaseSettings,
        NatsSettings,
        SecretsSettings,
        WorkerSettings,
        ProviderSettings,
    ):
        for field in cls.model_fields.values():
            if field.repr is False and field.validation_alias is not None:
                out |= set(field.validation_alias.choices)  # type: ignore[union-attr]
    return out


SECRET_ENV = _secret_field_env_names() | set(PLATFORM_SECRETS)


def _default(cls: type, field: str) -> Any:
    return cls.model_fields[field].default  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------- shape


def test_renders_deterministically() -> None:
    assert render_mod.render() == render_mod.render()
    assert render_mod.render([KIND_VALUES]) == render_mod.render([KIND_VALUES])


def test_every_object_is_well_formed_and_unique(objs: list[dict[str, Any]]) -> None:
    seen = set()
    for o in objs:
        assert o.get("apiVersion") and o.get("kind") and o["metadata"].get("name")
        key = (o["kind"], o["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)
        if o["kind"] == "Deployment":
            sel = o["spec"]["selector"]["matchLabels"]
            labels = o["spec"]["template"]["metadata"]["labels"]
            assert sel.items() <= labels.items()


def test_every_role_is_deployed(default_objs: list[dict[str, Any]]) -> None:
    comps = {component(o) for o in of_kind(default_objs, "Deployment")}
    assert {"api", "consumers", "gateway", "worker-system", "worker-shared"} <= comps
    assert {component(o) for o in of_kind(default_objs, "Service")} >= {"api", "consumers", "gateway"}
    assert of_kind(default_objs, "ConfigMap")


def test_container_args_are_cli_subcommands(objs: list[dict[str, Any]]) -> None:
    parser = build_parser()
    for o in workloads(objs):
        args = container(o)["args"]
        ns = parser.parse_args(args)  # SystemExit on an unknown subcommand or flag
        assert ns.command == args[0]
    roles = {container(o)["args"][0] for o in workloads(objs)}
    assert {"serve", "consumers", "worker", "gateway"} <= roles


def test_one_image_for_every_role(objs: list[dict[str, Any]]) -> None:
    assert len({container(o)["image"] for o in workloads(objs)}) == 1


def test_dockerfile_one_image_non_root_with_migrations_dir() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["noetl-control-plane"\]', text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root")
    migrations = re.search(r"NOETL_MIGRATIONS_DIR=(\S+)", text)
    assert migrations and "NOETL_MIGRATIONS_DIR" in KNOWN_ENV
    copied = re.search(r"^COPY schema (\S+)", text, re.M)
    assert copied and migrations.group(1).rstrip("/") == "/opt/noetl/" + copied.group(1).strip("./")


def test_pods_run_non_root(objs: list[dict[str, Any]]) -> None:
    for o in workloads(objs):
        pod = o["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container(o)["securityContext"]["allowPrivilegeEscalation"] is False


# ------------------------------------------------------------------------------------- ports, probes


def test_api_port_matches_server_settings(objs: list[dict[str, Any]]) -> None:
    port = _default(ServerSettings, "port")
    for d in deployments(objs, "api"):
        c = container(d)
        assert c["ports"] == [{"name": "http", "containerPort": port}]
        assert env_of(d)["NOETL_PORT"]["value"] == str(port)
    svc = by_name(objs, "Service", "noetl-api")
    assert svc["spec"]["ports"][0]["port"] == port and svc["spec"]["ports"][0]["targetPort"] == "http"


def test_consumers_serve_probes_on_their_port(objs: list[dict[str, Any]]) -> None:
    for d in deployments(objs, "consumers"):
        c = container(d)
        args = build_parser().parse_args(c["args"])
        assert args.port and c["ports"][0]["containerPort"] == args.port


def test_gateway_port_8090(objs: list[dict[str, Any]]) -> None:
    (gw,) = deployments(objs, "gateway")
    assert container(gw)["ports"][0]["containerPort"] == 8090
    assert env_of(gw)["ROUTER_PORT"]["value"] == "8090"
    assert by_name(objs, "Service", "noetl-gateway")["spec"]["ports"][0]["port"] == 8090


def _route_paths(module: Any) -> set[str]:
    return {r.path for r in module.routes}  # aiohttp RouteDef


SEED_PROBES = {
    "livenessProbe": ("/healthz", {"initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 3}),
    "readinessProbe": ("/readyz", {"initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3}),
    "startupProbe": ("/healthz", {"periodSeconds": 5, "failureThreshold": 30}),
}


@pytest.mark.parametrize("comp", ["api", "consumers"])
def test_probes_follow_the_seed_table(objs: list[dict[str, Any]], comp: str) -> None:
    served = _route_paths(health)
    for d in deployments(objs, comp):
        c = container(d)
        for probe, (path, timing) in SEED_PROBES.items():
            p = c[probe]
            assert p["httpGet"]["path"] == path and path in served
            assert p["httpGet"]["port"] == "http"
            assert {k: v for k, v in p.items() if k != "httpGet"} == timing, (comp, probe)


def test_mtls_switches_api_probes_to_tcp_socket() -> None:
    objs = render({"tls": {"secretName": "noetl-tls", "clientCa": True}})
    for d in deployments(objs, "api"):
        c = container(d)
        env = env_of(d)
        assert {"NOETL_TLS_CERT", "NOETL_TLS_KEY", "NOETL_TLS_CLIENT_CA"} <= env.keys()
        for probe, (_, timing) in SEED_PROBES.items():
            assert c[probe]["tcpSocket"] == {"port": "http"} and "httpGet" not in c[probe]
            assert {k: v for k, v in c[probe].items() if k != "tcpSocket"} == timing
    assert literal_env(deployments(objs, "api")[0], objs)["NOETL_PUBLIC_SERVER_URL"].startswith("https://")


def test_server_only_tls_keeps_http_get_over_https() -> None:
    objs = render({"tls": {"secretName": "noetl-tls", "clientCa": False}})
    for d in deployments(objs, "api"):
        assert "NOETL_TLS_CLIENT_CA" not in env_of(d)
        assert container(d)["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_default_resources_follow_the_seed(default_objs: list[dict[str, Any]]) -> None:
    for d in deployments(default_objs, "api"):
        assert container(d)["resources"] == {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1000m", "memory": "512Mi"},
        }


# ------------------------------------------------------------------------------------------ env vars


def test_known_env_names_are_parsed_from_the_code() -> None:
    # Guards the parsers themselves: a few names every settings group must yield.
    assert {"NOETL_PORT", "POSTGRES_HOST", "NATS_URL", "NOETL_FEED_FILTER_SUBJECT"} <= _config_env_names()
    assert "NOETL_MIGRATIONS_DIR" in _documented_env_names()


def _gateway_settings_present() -> bool:
    return "ROUTER_PORT" in KNOWN_ENV


def test_env_names_exist_in_settings_or_docs(objs: list[dict[str, Any]]) -> None:
    unknown: dict[str, set[str]] = {}
    for cm in of_kind(objs, "ConfigMap"):
        unknown.setdefault("configmap", set()).update(set(cm["data"]) - KNOWN_ENV)
    for o in workloads(objs):
        if component(o) == "gateway" and not _gateway_settings_present():
            continue  # checked by test_gateway_env_names_exist_in_gateway_settings
        unknown.setdefault(component(o), set()).update(set(env_of(o)) - KNOWN_ENV)
    assert not {k: v for k, v in unknown.items() if v}


def test_gateway_env_names_exist_in_gateway_settings(default_objs: list[dict[str, Any]]) -> None:
    if not _gateway_settings_present():
        pytest.skip("gateway settings (gateway.md §2.2, app/config gateway group) are not on this branch yet")
    (gw,) = deployments(default_objs, "gateway")
    assert set(env_of(gw)) <= KNOWN_ENV


def test_platform_secrets_come_from_secret_key_refs(objs: list[dict[str, Any]]) -> None:
    (api0, *_) = deployments(objs, "api")
    assert set(PLATFORM_SECRETS) <= set(env_of(api0))
    for o in workloads(objs):
        for name, entry in env_of(o).items():
            if name in SECRET_ENV:
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref and ref["name"] and ref["key"] and "value" not in entry, (component(o), name)


def test_no_literal_secret_values(objs: list[dict[str, Any]]) -> None:
    assert not of_kind(objs, "Secret"), "the chart references Secrets, it never creates them"
    for cm in of_kind(objs, "ConfigMap"):
        assert not set(cm["data"]) & SECRET_ENV
        for k, v in cm["data"].items():
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", v), f"credentials embedded in {k}"
    secretish = re.compile(r"(PASSWORD|TOKEN|SECRET|_KEY$|ACCESS_KEY)")
    for o in workloads(objs):
        for name, entry in env_of(o).items():
            if secretish.search(name) and "value" in entry:
                # Only names of other variables may be literal (the keychain allow-list).
                assert name == "NOETL_KEYCHAIN_ENV_VARS" and set(entry["value"].split(",")) <= KNOWN_ENV


def test_machine_ids_are_distinct_per_replica(objs: list[dict[str, Any]]) -> None:
    ids = []
    for d in deployments(objs, "api") + deployments(objs, "consumers"):
        assert d["spec"]["replicas"] == 1, "a fixed machine id needs exactly one pod per Deployment"
        raw = env_of(d)["NOETL_SERVER_MACHINE_ID"]["value"]
        ids.append(ServerSettings(NOETL_SERVER_MACHINE_ID=raw).machine_id)  # type: ignore[call-arg]
    assert len(ids) == len(set(ids)) and all(0 <= i <= 1023 for i in ids)


def test_machine_ids_scale_with_replicas_and_overlap_fails() -> None:
    objs = render({"api": {"replicas": 5}, "consumers": {"replicas": 2}})
    ids = [
        env_of(d)["NOETL_SERVER_MACHINE_ID"]["value"]
        for d in of_kind(objs, "Deployment")
        if component(d) in ("api", "consumers")
    ]
    assert len(ids) == 7 == len(set(ids))
    with pytest.raises(render_mod.TemplateError, match="overlap"):
        render({"api": {"replicas": 3}, "consumers": {"machineIdBase": 2}})
    with pytest.raises(render_mod.TemplateError, match="0..1023"):
        render({"consumers": {"machineIdBase": 1023, "replicas": 2}})


def test_public_server_url_points_at_the_api_service(objs: list[dict[str, Any]]) -> None:
    svc = by_name(objs, "Service", "noetl-api")
    port = svc["spec"]["ports"][0]["port"]
    for o in workloads(objs):
        if container(o)["args"][0] in ("serve", "worker"):
            env = literal_env(o, objs)
            url = env["NOETL_PUBLIC_SERVER_URL"]
            assert url == f"http://noetl-api.noetl.svc.cluster.local:{port}"
            settings = ServerSettings(NOETL_PUBLIC_SERVER_URL=url)  # type: ignore[call-arg]
            assert settings.server_url == url
    (gw,) = deployments(objs, "gateway")
    assert env_of(gw)["NOETL_BASE_URL"]["value"] == f"http://noetl-api.noetl.svc.cluster.local:{port}"


# --------------------------------------------------------------------------------------- worker pools


def _worker_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> WorkerSettings:
    for name in _config_env_names():
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return WorkerSettings()


def test_worker_pools_filters_and_durables_match_worker_settings(
    objs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = worker_pools(objs)
    assert set(pools) == {"system", "shared"}
    for pool, d in pools.items():
        env = literal_env(d, objs)
        assert env["NOETL_FEED_FILTER_SUBJECT"] == f"{_default(NatsSettings, 'subject')}.{pool}.>"
        # The durable the code derives from the filter alone equals the one the manifest pins.
        derived = _worker_settings(
            {"NOETL_FEED_FILTER_SUBJECT": env["NOETL_FEED_FILTER_SUBJECT"]}, monkeypatch
        )
        assert derived.pool_segment == pool
        assert env["NATS_CONSUMER"] == derived.durable_name == f"noetl_worker_pool_{pool}"
        ws = _worker_settings(env, monkeypatch)
        assert ws.pool_name == pool and ws.durable_name == env["NATS_CONSUMER"]
        assert env["NATS_STREAM"] == _default(NatsSettings, "stream")
        assert env_of(d)["WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert not {k for k in env_of(d) if k.startswith("POSTGRES_") or k == "DATABASE_URL"}, (
            "workers never touch the database"
        )
    assert literal_env(pools["shared"], objs)["NOETL_FEED_FILTER_SUBJECT"] == _default(
        WorkerSettings, "filter_subject"
    )


def test_only_the_system_pool_holds_the_internal_token(
    objs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = worker_pools(objs)
    system = env_of(pools["system"])
    assert system["NOETL_INTERNAL_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert system["NOETL_KEYCHAIN_ENV_VARS"]["value"] == "NOETL_INTERNAL_API_TOKEN"
    ws = _worker_settings(
        {"NOETL_KEYCHAIN_ENV_VARS": system["NOETL_KEYCHAIN_ENV_VARS"]["value"]}, monkeypatch
    )
    assert ws.env_allowlist == ["NOETL_INTERNAL_API_TOKEN"]
    for pool, d in pools.items():
        if pool != "system":
            assert not {"NOETL_INTERNAL_API_TOKEN", "NOETL_KEYCHAIN_ENV_VARS"} & set(env_of(d)), pool


# ---------------------------------------------------------------------------------------------- KEDA


def test_system_pool_scales_on_outbox_pending_count(default_objs: list[dict[str, Any]]) -> None:
    so = by_name(default_objs, "ScaledObject", "noetl-worker-system")
    assert so["spec"]["scaleTargetRef"]["name"] == worker_pools(default_objs)["system"]["metadata"]["name"]
    (trigger,) = [t for t in so["spec"]["triggers"] if t["type"] == "metrics-api"]
    md = trigger["metadata"]
    m = re.fullmatch(r"http://([^.]+)\.noetl\.svc\.cluster\.local:(\d+)(/\S+)", md["url"])
    assert m, md["url"]
    svc = by_name(default_objs, "Service", m.group(1))
    assert component(svc) == "api" and int(m.group(2)) == svc["spec"]["ports"][0]["port"]
    assert m.group(3) == "/api/internal/outbox/pending-count" and m.group(3) in _route_paths(internal_outbox)
    assert md["valueLocation"] == "pending" and md["authMode"] == "bearer"
    auth = by_name(default_objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    token_ref = env_of(worker_pools(default_objs)["system"])["NOETL_INTERNAL_API_TOKEN"]["valueFrom"][
        "secretKeyRef"
    ]
    assert ref["parameter"] == "token" and {ref["name"], ref["key"]} == {token_ref["name"], token_ref["key"]}


def test_worker_pools_scale_on_command_stream_lag(
    default_objs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = worker_pools(default_objs)
    for pool, d in pools.items():
        so = by_name(default_objs, "ScaledObject", d["metadata"]["name"])
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] == d["metadata"]["name"]
        assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (10, 30)
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 20)
        (t,) = [t for t in spec["triggers"] if t["type"] == "nats-jetstream"]
        md = t["metadata"]
        assert md["stream"] == _default(NatsSettings, "stream") == "NOETL_COMMANDS"
        assert md["account"] == "NOETL"
        assert md["natsServerMonitoringEndpoint"] == "nats.nats.svc.cluster.local:8222"
        assert (md["lagThreshold"], md["activationLagThreshold"]) == ("10", "1")
        env = literal_env(d, default_objs)
        ws = _worker_settings({"NOETL_FEED_FILTER_SUBJECT": env["NOETL_FEED_FILTER_SUBJECT"]}, monkeypatch)
        assert md["consumer"] == ws.durable_name == env["NATS_CONSUMER"], pool


# ------------------------------------------------------------------------------------------------ kind


def test_kind_overlay_is_small_and_in_cluster(kind_objs: list[dict[str, Any]]) -> None:
    for d in of_kind(kind_objs, "Deployment"):
        assert d["spec"]["replicas"] == 1
        res = container(d)["resources"]
        assert res["requests"]["memory"].endswith("Mi") and int(res["requests"]["memory"][:-2]) < 256
        assert container(d)["imagePullPolicy"] == "Never"
    assert len(deployments(kind_objs, "api")) == 1
    (api,) = deployments(kind_objs, "api")
    env = literal_env(api, kind_objs)
    assert env["POSTGRES_HOST"] == "postgres.noetl.svc"
    assert env["NATS_URL"] == "nats://nats.nats.svc.cluster.local:4222"
    assert not of_kind(kind_objs, "ScaledObject") and not of_kind(kind_objs, "TriggerAuthentication")


def test_migrations_run_in_a_hook_job_not_on_every_api_start(default_objs: list[dict[str, Any]]) -> None:
    (job,) = of_kind(default_objs, "Job")
    assert container(job)["args"] == ["migrate"]
    assert "pre-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert "envFrom" not in container(job), "pre-install hooks run before the ConfigMap exists"
    for d in deployments(default_objs, "api"):
        assert env_of(d)["NOETL_MIGRATE_ON_START"]["value"] == "false"


def test_values_files_only_reference_secrets() -> None:
    for f in (CHART / "values.yaml", KIND_VALUES):
        values = yaml.safe_load(f.read_text())
        for ref in (values.get("secrets") or {}).values():
            assert set(ref) == {"name", "key"}
