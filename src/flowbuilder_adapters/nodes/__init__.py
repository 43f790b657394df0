"""Node runners and the JMESPath expression evaluator the engine uses."""

from flowbuilder_adapters.nodes.basic import DataSetRunner, DelayRunner, basic_runners
from flowbuilder_adapters.nodes.expressions import JmesPathEvaluator

__all__ = ["DataSetRunner", "DelayRunner", "JmesPathEvaluator", "basic_runners"]
