#!/usr/bin/env python3
"""Local function `charge`: charges a card (a stand-in for a payment API).

Reads {"orderId", "amount", "card"} on stdin and writes {"chargeId", "amount"} on stdout.
Cards ending in 0002 are declined: like a failing Lambda function, it writes
{"errorType": "CardDeclined", "errorMessage": ...} on stdout and exits with code 1, which
stepgate turns into the Task's Error (errorType) and Cause.
"""
import json
import sys

event = json.load(sys.stdin)
card = str(event.get("card", ""))
if card.endswith("0002"):
    print(json.dumps({"errorType": "CardDeclined",
                      "errorMessage": f"card ending {card[-4:]} was declined"}))
    sys.exit(1)
print(json.dumps({"chargeId": "ch_" + event["orderId"], "amount": event["amount"]}))
