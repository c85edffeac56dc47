// PromQL inspection with Prometheus' own Lezer grammar
// (@prometheus-io/lezer-promql, the parser of Prometheus' web UI, pinned to
// the release of Debian 12's promtool, 2.42).
//
// inspect(expr) -> { errors, selectors: [{name, labels, from, to}], calls: [{fn, metric}] }
//   selectors: every vector selector with its metric name and the label names
//     its matchers use;
//   calls: rate/irate/increase/resets and delta/idelta/deriv/predict_linear
//     with the metric of their range selector (for the counter/gauge check).

import { parser } from "@prometheus-io/lezer-promql";

// Functions meant for counters, and functions meant for gauges.
export const COUNTER_FUNCTIONS = new Set(["rate", "irate", "increase", "resets"]);
export const GAUGE_FUNCTIONS = new Set(["delta", "idelta", "deriv", "predict_linear"]);

export function inspect(expr) {
  const tree = parser.parse(expr);
  const errors = [];
  const selectors = [];
  const calls = [];
  const text = (node) => expr.slice(node.from, node.to);

  tree.iterate({
    enter(ref) {
      if (ref.type.isError) {
        errors.push(`syntax error at offset ${ref.from}: ...${expr.slice(Math.max(0, ref.from - 20), ref.from + 20)}...`);
        return;
      }
      if (ref.name === "VectorSelector") {
        const node = ref.node;
        const ident = node.getChild("Identifier");
        const labels = [];
        const matchers = node.getChild("LabelMatchers");
        if (matchers) {
          for (const m of matchers.getChildren("LabelMatcher")) {
            const ln = m.getChild("LabelName");
            if (ln) labels.push(text(ln));
          }
        }
        if (!ident) {
          errors.push(`selector without a metric name: ${text(node)} (name every metric, so that it can be checked)`);
        } else if (labels.includes("__name__")) {
          errors.push(`selector matching __name__: ${text(node)} (name every metric, so that it can be checked)`);
        }
        selectors.push({ name: ident ? text(ident) : null, labels, text: text(node) });
      }
      if (ref.name === "FunctionCall") {
        const node = ref.node;
        const fnNode = node.getChild("FunctionIdentifier");
        const fn = fnNode ? text(fnNode) : "";
        if (COUNTER_FUNCTIONS.has(fn) || GAUGE_FUNCTIONS.has(fn)) {
          const body = node.getChild("FunctionCallBody");
          const matrix = body?.getChild("MatrixSelector");
          const vs = matrix?.getChild("VectorSelector");
          const ident = vs?.getChild("Identifier");
          if (ident) calls.push({ fn, metric: text(ident) });
        }
      }
    },
  });
  return { errors, selectors, calls };
}

// Grafana template variables -> values PromQL accepts, for parsing and for
// promtool: the interval variables become a duration, every other variable a
// plain word (they are only used inside label values here).
export function substituteGrafana(expr) {
  return expr
    .replace(/\$\{?__(rate_interval|interval|range)(?::[a-z]+)?\}?/g, "5m")
    .replace(/\$\{[A-Za-z0-9_]+(?::[a-z]+)?\}/g, "x")
    .replace(/\$[A-Za-z_][A-Za-z0-9_]*/g, "x");
}
