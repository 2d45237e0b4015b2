#!/usr/bin/env python3
"""Local function `price`: prices an order.

Reads the order as JSON on stdin, writes {"lines", "subtotal", "shipping", "total", "currency"}
on stdout; the currency comes from the environment (config: [functions.price] env).
An unknown SKU fails the way Lambda reports a function error: the report on stdout, exit code 1.
"""
import json
import os
import sys

CATALOG = {"BOOK": 12.5, "PEN": 1.2, "LAMP": 49.0, "DESK": 1299.99}

order = json.load(sys.stdin)
lines = []
for item in order.get("items", []):
    sku = item["sku"]
    if sku not in CATALOG:
        print(json.dumps({"errorType": "UnknownSku", "errorMessage": f"no price for SKU {sku}"}))
        sys.exit(1)
    lines.append({"sku": sku, "qty": item["qty"], "amount": round(CATALOG[sku] * item["qty"], 2)})
subtotal = round(sum(line["amount"] for line in lines), 2)
shipping = 0 if subtotal >= 50 else 4.9
print(json.dumps({"lines": lines, "subtotal": subtotal, "shipping": shipping,
                  "total": round(subtotal + shipping, 2), "currency": os.environ.get("CURRENCY", "USD")}))
