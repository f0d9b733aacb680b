"""What the Kubernetes executor writes, decided without a cluster (ambient.remediation.changes)."""

from __future__ import annotations

import re
from typing import Any

from ambient.remediation.changes import (
    configmaps_of,
    isolation_policy_name,
    isolation_value,
    json_stamp,
    merge_diff,
    selects,
    without_hash,
)
from ambient.remediation.ladder import ISOLATION_LABEL, STEP_ANNOTATION, STEP_HISTORY_ANNOTATION
from tests.standins.kube_api import apply_patch

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def test_configmaps_of_a_template_come_from_volumes_projections_env_from_and_env() -> None:
    template = {
        "spec": {
            "volumes": [
                {"name": "a", "configMap": {"name": "files"}},
                {"name": "b", "projected": {"sources": [{"configMap": {"name": "bundle"}}]}},
                {"name": "c", "secret": {"secretName": "not-a-configmap"}},
            ],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "boot"}}]}],
            "containers": [
                {
                    "name": "app",
                    "envFrom": [{"secretRef": {"name": "creds"}}],
                    "env": [
                        {
                            "name": "MODE",
                            "valueFrom": {"configMapKeyRef": {"name": "env", "key": "m"}},
                        },
                        {"name": "PLAIN", "value": "1"},
                        {
                            "name": "AGAIN",
                            "valueFrom": {"configMapKeyRef": {"name": "files", "key": "x"}},
                        },
                    ],
                }
            ],
        }
    }
    assert configmaps_of(template) == ["boot", "bundle", "env", "files"]
    assert configmaps_of({}) == []


def test_merge_diff_removes_what_is_gone_and_sets_what_changed() -> None:
    current = {"app": "checkout", ISOLATION_LABEL: "abc", "tier": "web"}
    wanted = {"app": "checkout", "tier": "api"}
    diff = merge_diff(current, wanted)
    assert diff == {ISOLATION_LABEL: None, "tier": "api"}
    assert apply_patch({"s": current}, "application/merge-patch+json", {"s": diff}) == {"s": wanted}


def test_a_service_selects_the_workload_only_with_its_own_labels_all_matching() -> None:
    pods = {"app": "checkout", "track": "stable"}
    assert selects({"app": "checkout"}, pods)
    assert selects({"app": "checkout", ISOLATION_LABEL: "abc"}, pods)  # isolated by us
    assert not selects({"app": "checkout", "track": "canary"}, pods)
    assert not selects({}, pods)  # a selector-less Service has hand-made endpoints
    assert not selects({ISOLATION_LABEL: "abc"}, pods)


def test_without_hash_is_the_template_the_deployment_had() -> None:
    rs_template: dict[str, Any] = {
        "metadata": {"labels": {"app": "checkout", "pod-template-hash": "5d9f"}},
        "spec": {"containers": [{"name": "checkout", "image": "v1"}]},
    }
    assert without_hash(rs_template) == {
        "metadata": {"labels": {"app": "checkout"}},
        "spec": {"containers": [{"name": "checkout", "image": "v1"}]},
    }
    assert rs_template["metadata"]["labels"]["pod-template-hash"] == "5d9f"  # not mutated


def test_the_json_stamp_escapes_the_annotation_key_and_sets_the_precondition() -> None:
    obj = {"metadata": {"resourceVersion": "7", "annotations": {"a": "b"}}}
    patched = apply_patch(obj, "application/json-patch+json", json_stamp(obj, "r#3"))
    assert patched["metadata"] == {
        "resourceVersion": "7",
        "annotations": {"a": "b", STEP_ANNOTATION: "r#3", STEP_HISTORY_ANNOTATION: '["r#3"]'},
    }
    # A later step keeps the earlier keys: a retry of r#3 still finds its change.
    later = apply_patch(patched, "application/json-patch+json", json_stamp(patched, "s#1"))
    assert later["metadata"]["annotations"][STEP_HISTORY_ANNOTATION] == '["r#3", "s#1"]'
    bare = {"metadata": {"resourceVersion": "8"}}
    patched = apply_patch(bare, "application/json-patch+json", json_stamp(bare, "r#3"))
    assert patched["metadata"]["annotations"] == {
        STEP_ANNOTATION: "r#3",
        STEP_HISTORY_ANNOTATION: '["r#3"]',
    }


def test_isolation_names_are_valid_kubernetes_names_and_differ_per_run() -> None:
    first = "remediation/1d9858cf54e54cde@0190f4c2-7a6e-7c3b-9d7e-1f2a3b4c5d6e"
    second = "remediation/1d9858cf54e54cde@0190f4c2-7a6e-7c3b-9d7e-1f2a3b4c5d6f"
    names = {isolation_policy_name(first), isolation_policy_name(second)}
    assert len(names) == 2 and all(DNS_1123_LABEL.match(n) for n in names)
    assert all(n.startswith("ambient-isolate-remediation-1d9858cf54e54cde") for n in names)
    assert LABEL_VALUE.match(isolation_value(f"{first}#4"))
    assert isolation_value(f"{first}#4") != isolation_value(f"{second}#4")
