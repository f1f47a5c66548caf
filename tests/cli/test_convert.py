"""``canary convert`` / ``canary lint`` as a user runs them: files in, YAML and a report out."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from canary.cli.app import execute
from canary.cli.errors import ExitCode
from canary.domain.spec import NoDataPolicy, parse_canary_spec

CANARY = textwrap.dedent("""\
    # keep me
    apiVersion: flagger.app/v1beta1
    kind: Canary
    metadata:
      name: podinfo
      namespace: test
    spec:
      provider: gatewayapi  # north-south
      targetRef:
        apiVersion: apps/v1
        kind: Deployment
        name: podinfo
      service:
        port: 9898
      analysis:
        # checks
        interval: 1m
        threshold: 2
        stepWeight: 10
        metrics:
          - name: request-success-rate
            interval: 1m
            thresholdRange:
              min: 99
    """)
SERVICE = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: podinfo  # untouched
    spec:
      ports: [{port: 80}]
    """)


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = execute(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def canary(**analysis: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CANARY)
    doc["spec"]["analysis"].update(analysis)
    return doc


def test_convert_rewrites_apiversion_keeps_comments_and_passes_other_kinds_through() -> None:
    code, out, err = run(["convert", "-f", "-"], stdin=f"{CANARY}---\n{SERVICE}")
    assert code == ExitCode.OK, err
    assert out == CANARY.replace("flagger.app/v1beta1", "canary.dev/v1alpha1") + "---\n" + SERVICE
    assert "Canary test/podinfo: accepted" in err
    assert "Service podinfo: not a Flagger object, unchanged" in err


def test_lint_reports_without_writing_a_manifest() -> None:
    code, out, err = run(["lint", "-f", "-"], stdin=CANARY)
    assert (code, out) == (ExitCode.OK, "")
    assert "1 Flagger object(s): 1 accepted, 0 refused" in err


def test_output_file(tmp_path: Path) -> None:
    source, target = tmp_path / "in.yaml", tmp_path / "out.yaml"
    source.write_text(CANARY)
    code, out, _ = run(["convert", "-f", str(source), "-o", str(target)])
    assert (code, out) == (ExitCode.OK, "")
    assert yaml.safe_load(target.read_text())["apiVersion"] == "canary.dev/v1alpha1"


@pytest.mark.parametrize("analysis_key", ["analysis", "canaryAnalysis"])
def test_flagger_no_data_writes_fail_where_the_analysis_is(analysis_key: str) -> None:
    text = CANARY.replace("  analysis:", f"  {analysis_key}:")
    code, out, err = run(["convert", "-f", "-", "--flagger-no-data"], stdin=text)
    assert code == ExitCode.OK, err
    written = yaml.safe_load(out)
    assert written["spec"][analysis_key]["noDataPolicy"] == "fail"
    assert written["spec"][analysis_key]["consecutiveErrorLimit"] == 0
    parsed = parse_canary_spec(written["spec"]).analysis
    assert (parsed.no_data_policy, parsed.consecutive_error_limit) == (NoDataPolicy.FAIL, 0)
    assert "# checks" in out and "# keep me" in out, "comments survive the inserted line"
    assert f"note spec.{analysis_key}.noDataPolicy: written as fail" in err
    assert f"note spec.{analysis_key}.consecutiveErrorLimit: written as 0" in err


def test_without_the_option_the_no_data_difference_is_reported_and_nothing_written() -> None:
    code, out, err = run(["convert", "-f", "-"], stdin=CANARY)
    assert code == ExitCode.OK
    assert "noDataPolicy" not in out
    assert "differs spec.analysis.noDataPolicy: unset: here a check without data holds" in err
    assert "consecutiveErrorLimit" not in out
    assert ("differs spec.analysis.consecutiveErrorLimit: unset: here a metrics provider that does not answer "
            "holds the weight for up to 4 ticks") in err
    assert "--flagger-no-data" in err


def test_flagger_no_data_keeps_a_policy_already_set() -> None:
    code, out, err = run(["convert", "-f", "-", "--flagger-no-data"], stdin=yaml.safe_dump(canary(noDataPolicy="hold")))
    assert code == ExitCode.OK
    assert yaml.safe_load(out)["spec"]["analysis"]["noDataPolicy"] == "hold"
    assert "noDataPolicy" not in err


def test_a_document_the_text_edit_cannot_place_is_written_from_the_object() -> None:
    flow = yaml.safe_dump(canary(), default_flow_style=True)  # analysis in flow style: no line to insert after
    code, out, _ = run(["convert", "-f", "-", "--flagger-no-data"], stdin=flow)
    assert code == ExitCode.OK
    expected = canary(noDataPolicy="fail", consecutiveErrorLimit=0)
    expected["apiVersion"] = "canary.dev/v1alpha1"
    assert yaml.safe_load(out) == expected


@pytest.mark.parametrize(
    ("analysis", "field", "words"),
    [
        pytest.param({"interval": "5s"}, "spec.analysis.interval", "5s is honoured here; Flagger silently raised",
                     id="short-interval"),
        pytest.param({"threshold": None}, "spec.analysis.threshold", "here 5 failed checks", id="threshold-unset"),
        pytest.param({"interval": "2m", "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]},
                     "spec.analysis.metrics[0].interval", "analysis interval (2m); Flagger queried the last 1m",
                     id="metric-window"),
    ],
)
def test_flagger_defaults_that_differ_are_reported(analysis: dict[str, Any], field: str, words: str) -> None:
    doc = canary(**analysis)
    doc["spec"]["analysis"] = {k: v for k, v in doc["spec"]["analysis"].items() if v is not None}
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.OK, "a difference is not a refusal"
    assert f"Canary test/podinfo: differs {field}: " in err and words in err, err


def test_nothing_differs_where_flagger_and_we_agree() -> None:
    _, _, err = run(["lint", "-f", "-", "--flagger-no-data"], stdin=CANARY)
    assert " differs " not in err, err


def test_max_weight_with_step_weights_is_a_note_not_a_refusal() -> None:
    doc = canary(stepWeights=[10, 80], maxWeight=50)
    del doc["spec"]["analysis"]["stepWeight"]
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.OK, err
    assert "note spec.analysis.maxWeight: 50 is not used: with stepWeights the last step (80)" in err


@pytest.mark.parametrize(("flags", "code"), [([], ExitCode.REFUSED), (["--default-provider", "gatewayapi"], ExitCode.OK)])
def test_route_options_without_provider_are_judged_with_the_default_provider(flags: list[str], code: int) -> None:
    doc = canary()
    del doc["spec"]["provider"]
    doc["spec"]["service"].update(hosts=["app.example.com"], gatewayRefs=[{"name": "public"}])
    got, _, err = run(["lint", "-f", "-", *flags], stdin=yaml.safe_dump(doc))
    assert got == code, err
    assert "differs spec.provider: unset: the controller's --default-provider decides" in err
    if code == ExitCode.REFUSED:
        assert "refused spec.service.hosts: spec.service.hosts applies only with provider gatewayapi" in err
        assert "condition Stalled, reason InvalidSpec" in err


def test_a_refused_provider_is_reported_with_the_parsers_words() -> None:
    doc = canary()
    doc["spec"]["provider"] = "contour"
    code, out, err = run(["convert", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED
    assert "refused spec.provider: 'contour' is refused: Contour (HTTPProxy)" in err
    assert yaml.safe_load(out)["apiVersion"] == "canary.dev/v1alpha1", "the port is written even when refused"


def test_every_refused_field_is_named_not_only_the_parsers_first() -> None:
    doc = canary(threshold=0)
    doc["spec"]["ingressRef"] = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}
    doc["spec"]["upstreamRef"] = {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "podinfo"}
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED
    for field in ("spec.ingressRef", "spec.upstreamRef", "spec.analysis.threshold"):
        assert f"refused {field}: " in err, err
    assert "Flagger read a threshold of 0 or less as 1" in err
    assert "Canary test/podinfo: refused (3 fields)" in err


def test_an_alert_provider_is_refused_and_kept() -> None:
    alert = "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: slack\nspec:\n  type: slack\n"
    code, out, err = run(["convert", "-f", "-"], stdin=alert)
    assert code == ExitCode.REFUSED
    assert out == alert
    assert "AlertProvider slack: refused kind: AlertProvider is not supported yet" in err


@pytest.mark.parametrize(
    ("argv", "stdin", "code", "words"),
    [
        pytest.param(["convert"], "", ExitCode.USAGE, "-f/--filename", id="no-file"),
        pytest.param(["lint", "-f", "-", "-o", "x"], "", ExitCode.USAGE, "unrecognized", id="lint-has-no-output"),
        pytest.param(["convert", "-f", "-", "--default-provider", "istio"], "", ExitCode.USAGE, "invalid choice",
                     id="refused-default-provider"),
        pytest.param(["convert", "-f", "/nonexistent/flagger.yaml"], "", ExitCode.ERROR, "cannot read",
                     id="missing-file"),
        pytest.param(["convert", "-f", "-"], "a: [1\n", ExitCode.ERROR, "standard input is not valid YAML",
                     id="not-yaml"),
    ],
)
def test_usage_and_input_errors(argv: list[str], stdin: str, code: int, words: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = run(argv, stdin)
    printed = capsys.readouterr()  # argparse writes its usage errors to the process's stderr itself
    assert (got, out, printed.out) == (code, "", "")
    assert words in err + printed.err, err + printed.err


@pytest.mark.parametrize("command", ["convert", "lint"])
def test_help_documents_the_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run([command, "--help"])
    assert code == ExitCode.OK
    assert "4: something would be refused" in capsys.readouterr().out


def test_an_older_flagger_version_is_ported_too() -> None:
    code, out, err = run(["convert", "-f", "-"], stdin=CANARY.replace("v1beta1", "v1alpha3"))
    assert code == ExitCode.OK, err
    assert yaml.safe_load(out)["apiVersion"] == "canary.dev/v1alpha1"
    assert "Canary test/podinfo: accepted" in err


def test_an_already_ported_canary_is_checked_the_same_way() -> None:
    doc = canary()
    doc["apiVersion"] = "canary.dev/v1alpha1"
    doc["spec"]["ingressRef"] = {"name": "podinfo"}
    code, out, err = run(["convert", "-f", "-"], stdin=yaml.safe_dump(doc, sort_keys=False))
    assert code == ExitCode.REFUSED
    assert yaml.safe_load(out) == doc
    assert "refused spec.ingressRef: " in err


@pytest.mark.parametrize(("service", "field", "words"), [
    pytest.param({"hosts": ["app.example.com"]}, "spec.service.hosts",
                 "meshes ignore its hostnames; set spec.service.gatewayRefs to the Gateway", id="hosts-without-gateway"),
    pytest.param({"timeout": "2.5ms"}, "spec.service.timeout", "2.5ms is not a whole number of milliseconds",
                 id="sub-millisecond-timeout"),
])
def test_what_the_gateway_api_router_refuses_is_refused_by_name(service: dict[str, Any], field: str,
                                                                  words: str) -> None:
    doc = canary()
    doc["spec"]["service"].update(service)
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED, err
    assert f"refused {field}: " in err and words in err, err
    assert "condition Stalled, reason InvalidSpec" in err


def test_a_north_south_canary_with_every_gateway_option_is_accepted() -> None:
    doc = canary()
    doc["spec"]["service"].update(
        gatewayRefs=[{"name": "public", "namespace": "gateways"}], hosts=["app.example.com"], timeout="30s",
        backendTimeout="1.5s", headers={"request": {"set": {"x-a": "1"}}}, rewrite={"uri": "/v2"})
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.OK, err


@pytest.mark.parametrize("provider", ["smi", "linkerd"])
def test_smi_ab_by_header_is_accepted_with_what_it_needs_and_query_parameters_are_refused(provider: str) -> None:
    doc = canary(iterations=3, match=[{"headers": {"x-canary": {"exact": "insider"}}}])
    del doc["spec"]["analysis"]["stepWeight"]
    doc["spec"]["provider"] = provider
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.OK, err
    assert (f"differs spec.analysis.match: with provider {provider!r} the conditions go into an SMI HTTPRouteGroup "
            "that the TrafficSplit names") in err
    assert "needs TrafficSplit v1alpha3 or v1alpha4" in err

    doc["spec"]["analysis"]["match"].append({"queryParams": {"beta": {"exact": "on"}}})
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED, err
    assert (f"refused spec.analysis.match[1].queryParams: spec.analysis.match[1].queryParams: provider {provider!r} "
            "does A/B testing with an SMI HTTPRouteGroup") in err


def test_provider_kubernetes_is_blue_green_and_a_weighted_analysis_is_refused_by_name() -> None:
    doc = canary()
    doc["spec"]["provider"] = "kubernetes"
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED, err
    assert "refused spec.analysis.stepWeight: spec.analysis.stepWeight: provider 'kubernetes' is blue/green" in err
    del doc["spec"]["analysis"]["stepWeight"]
    doc["spec"]["analysis"]["iterations"] = 5
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code != ExitCode.REFUSED, err
    assert "spec.provider: 'kubernetes': as in Flagger: blue/green only" in err


def test_provider_kubernetes_refuses_ab_testing_by_name() -> None:
    doc = canary(iterations=5, match=[{"headers": {"x-canary": {"exact": "insider"}}}])
    del doc["spec"]["analysis"]["stepWeight"]
    doc["spec"]["provider"] = "kubernetes"
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED, err
    assert "refused spec.analysis.match: spec.analysis.match needs a route object" in err
    assert "the conditions go into an SMI HTTPRouteGroup" not in err, "that finding is for SMI providers only"
