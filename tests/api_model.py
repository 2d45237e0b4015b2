#!/usr/bin/env python3
"""Probes every member of every Step Functions operation a running `stepgate serve` answers,
from botocore's service model (installed with boto3): a value of the wrong JSON type must get
AWS's SerializationException, and a value past each bound of the model (length, range, enum)
AWS's ValidationException, worded as AWS words them. Run by tests/hardening.rs:

    python3 tests/api_model.py http://127.0.0.1:8083

Prints one line per wrong answer and a summary; exits 1 if any answer was wrong.
"""

import json
import sys
import urllib.error
import urllib.request

import botocore.session

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:probe"
# Execution data is held to the daemon's limits.payload_bytes, not to the model's bound.
PAYLOAD = "SensitiveData"


def call(endpoint, operation, body):
    req = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AWSStepFunctions.{operation}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def valid(shape, depth=0):
    """A value the model accepts for `shape`."""
    t = shape.type_name
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        if "Arn" in shape.name:
            return ARN
        lo = shape.metadata.get("min", 1)
        return "a" * max(lo, 1)
    if t in ("integer", "long"):
        return shape.metadata.get("min", 1)
    if t == "boolean":
        return False
    if t == "list":
        return []
    if t == "structure":
        if depth > 3:
            return {}
        return {m: valid(shape.members[m], depth + 1) for m in shape.required_members}
    if t == "map":
        return {}
    if t == "timestamp":
        return 0
    return None


WRONG = {
    # shape type -> [(wrong value, AWS's message)]
    "string": [(12, "NUMBER_VALUE can not be converted to a String"),
               (True, "TRUE_VALUE can not be converted to a String"),
               ({"a": 1}, "Start of structure or map found where not expected."),
               (["a"], "Start of list found where not expected")],
    "integer": [("10", "STRING_VALUE can not be converted to an Integer"),
                (False, "FALSE_VALUE can not be converted to an Integer"),
                ({}, "Start of structure or map found where not expected.")],
    "long": [("10", "STRING_VALUE can not be converted to a Long")],
    "boolean": [("yes", "STRING_VALUE can not be converted to a Boolean"),
                (1, "NUMBER_VALUE can not be converted to a Boolean")],
    "list": [("x", "Expected list or null"), ({"a": "b"}, "Start of structure or map found where not expected.")],
    "structure": [("x", "Expected null"), ([1], "Start of list found where not expected")],
}


def beyond(shape):
    """(value, constraint text) past each bound of a scalar shape."""
    t, m = shape.type_name, shape.metadata
    out = []
    if t == "string":
        if shape.enum:
            out.append(("NOT_A_VALUE", f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
        elif shape.name != PAYLOAD:
            if m.get("min", 0) >= 1:
                out.append(("", f"Member must have length greater than or equal to {m['min']}"))
            if "max" in m and m["max"] <= 4096:
                out.append(("a" * (m["max"] + 1), f"Member must have length less than or equal to {m['max']}"))
    elif t in ("integer", "long"):
        if "min" in m:
            out.append((m["min"] - 1, f"Member must have value greater than or equal to {m['min']}"))
        if "max" in m:
            out.append((m["max"] + 1, f"Member must have value less than or equal to {m['max']}"))
    return out


def main():
    endpoint = sys.argv[1]
    model = botocore.session.get_session().get_service_model("stepfunctions")
    probes = wrong = 0
    served = []
    for op in model.operation_names:
        status, v = call(endpoint, op, {})
        if v.get("__type") == "UnknownOperationException":
            continue
        served.append(op)
        shape = model.operation_model(op).input_shape
        base = valid(shape)
        for name, member in shape.members.items():
            for value, message in WRONG.get(member.type_name, []):
                probes += 1
                status, v = call(endpoint, op, {**base, name: value})
                got = (status, v.get("__type"), v.get("message"))
                if got != (400, "SerializationException", message):
                    wrong += 1
                    print(f"{op}.{name} = {json.dumps(value)}: want SerializationException {message!r}, got {got}")
            for value, rule in beyond(member):
                probes += 1
                shown = "" if member.metadata.get("sensitive") else f" '{value}'"
                message = f"1 validation error detected: Value{shown} at '{name}' failed to satisfy constraint: {rule}"
                status, v = call(endpoint, op, {**base, name: value})
                got = (status, v.get("__type"), v.get("message"))
                if got != (400, "ValidationException", message):
                    wrong += 1
                    print(f"{op}.{name} = {json.dumps(value)[:40]}: want {message[:160]!r}, got {str(got)[:300]}")
        for name in shape.required_members:
            probes += 1
            body = {k: v for k, v in base.items() if k != name}
            shown = "" if shape.members[name].metadata.get("sensitive") else " null"
            message = f"1 validation error detected: Value{shown} at '{name}' failed to satisfy constraint: Member must not be null"
            status, v = call(endpoint, op, body)
            got = (status, v.get("__type"), v.get("message"))
            if got != (400, "ValidationException", message):
                wrong += 1
                print(f"{op} without {name}: want {message!r}, got {got}")
    print(f"{probes} probes over {len(served)} operations ({', '.join(served)}); {wrong} wrong")
    sys.exit(1 if wrong or not served else 0)


if __name__ == "__main__":
    main()
