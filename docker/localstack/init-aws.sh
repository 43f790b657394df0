#!/bin/bash
# LocalStack "ready" hook: create what FlowBuilder expects to exist.
set -euo pipefail

awslocal sqs create-queue --queue-name flowbuilder-executions
