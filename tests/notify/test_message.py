"""The system-neutral alert: the failing check with value and bounds, and the on-call commands."""

from __future__ import annotations

import shlex

from canary.domain.alerts import Severity
from canary.domain.status import Annotation, Verdict
from canary.notify.message import alert_message, check_line, number
from tests.notify.samples import check, rollback_notice


def test_the_failing_check_is_named_with_its_value_and_bounds() -> None:
    message = alert_message(rollback_notice(), Severity.ERROR)
    assert message.failing == ("error-rate: 7.5 outside [-inf, 1] (Fail, 120 samples): 7.5 is above 1",)
    assert ("Weight", "20%") in message.fields and ("Phase", "Failed") in message.fields
    assert ("Canary", "shop/podinfo") in message.fields
    assert message.title == "shop/podinfo: RolledBack"


def test_commands_use_the_real_annotations_and_cli() -> None:
    message = alert_message(rollback_notice(), Severity.ERROR)
    kubectl = {c.action: c.kubectl for c in message.commands}
    cli = {c.action: c.cli for c in message.commands}
    assert kubectl["Roll back"].startswith("kubectl annotate canary podinfo -n shop --overwrite "
                                           f"{Annotation.ROLLBACK.value}=")
    assert kubectl["Promote"].endswith(f"{Annotation.PROMOTE.value}=true")
    assert kubectl["Pause"].endswith(f"{Annotation.PAUSE.value}=true")
    assert cli == {"Roll back": "canary rollback podinfo -n shop", "Promote": "canary promote podinfo -n shop",
                   "Pause": "canary pause podinfo -n shop"}
    # Every command is one valid shell line.
    for command in [*kubectl.values(), *cli.values()]:
        assert shlex.split(command)[0] in ("kubectl", "canary")


def test_a_check_without_a_value_still_shows_its_bounds() -> None:
    line = check_line(check("success-rate", Verdict.NO_DATA, None, 99, None, "no samples"))
    assert line == "success-rate: no value (bounds [99, +inf]) (NoData, 120 samples): no samples"


def test_numbers_read_as_people_write_them() -> None:
    assert [number(v) for v in (1.0, 0.5, 99.123456, 1e-5)] == ["1", "0.5", "99.12", "1e-05"]
