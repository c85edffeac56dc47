#!/usr/bin/env node
// Offline checks of deploy/: run by scripts/check-deploy (see there for the
// whole sequence). Subcommands:
//
//   static    --out DIR [--k8s DIR] [--docs FILE] [--dashboard FILE] [--ferryd-help FILE]
//             Renders deploy/k8s/base and every overlay (kustomize.mjs), validates
//             each object against its schema (kubernetes-models and
//             @kubernetes-models/prometheus-operator) including unknown fields,
//             checks cross references and Ferry's own rules (below), checks the
//             dashboard's structure, and writes for promtool:
//               DIR/rules-<render>.yaml        the PrometheusRule's groups
//               DIR/dashboard-exprs.yaml       every dashboard query as a recording rule
//               DIR/config-<overlay>.env       the ferry-config ConfigMap (KEY=VALUE)
//               DIR/workload-env/*.env         each ferryd serve container's environment
//   metrics   --scrape FILE [--dashboard FILE] [--rules FILE]... [--k8s DIR]
//             Every metric the dashboard and the rules select must be one the
//             scrape (ferryd's /metrics) has a `# TYPE` line for (histogram
//             series by their _bucket/_sum/_count names); rate()/increase() only
//             on counters, delta()/deriv() only on gauges; label matchers only on
//             labels the metric has (or Prometheus' target labels).
//   render DIR
//             Prints the rendered kustomization in DIR as YAML (what the checks
//             see; `kubectl kustomize DIR` should print the same objects).
//   self-test --out DIR [--ferryd-help FILE]
//             Breaks copies of the manifests in several ways and expects
//             `static` to fail on each.
//
//   compare DIR FILE
//             Compares the rendering of DIR with FILE, the output of a real
//             `kubectl kustomize DIR` (object by object, keys sorted).
//
// Exit status: 0 when every check passed, 1 when one failed, 2 on usage errors.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import { render, KustomizeError, podSpecOf, containersOf, parseImage, group, id, shown, CLUSTER_SCOPED } from "./kustomize.mjs";
import { inspect, substituteGrafana, COUNTER_FUNCTIONS, GAUGE_FUNCTIONS } from "./promql.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");

// Labels Prometheus adds to every scraped series (ServiceMonitor defaults and
// deploy/k8s/base/monitoring.yaml's podTargetLabels).
const TARGET_LABELS = new Set(["job", "instance", "namespace", "pod", "service", "endpoint", "container",
  "app_kubernetes_io_component"]);
const SEVERITIES = new Set(["critical", "warning", "info"]);
const ROLES = new Set(["api", "d2c", "sweeper"]);
const EXTERNAL_ANNOTATION = "ferry/external-secrets";

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const opts = { rules: [] };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if ((command === "render" || command === "compare") && !a.startsWith("--")) {
      if (opts.dir === undefined) { opts.dir = a; continue; }
      if (command === "compare" && opts.file === undefined) { opts.file = a; continue; }
    }
    const value = () => {
      if (i + 1 >= rest.length) usage(`${a} needs a value`);
      return rest[++i];
    };
    switch (a) {
      case "--out": opts.out = value(); break;
      case "--k8s": opts.k8s = value(); break;
      case "--docs": opts.docs = value(); break;
      case "--dashboard": opts.dashboard = value(); break;
      case "--ferryd-help": opts.ferrydHelp = value(); break;
      case "--scrape": opts.scrape = value(); break;
      case "--rules": opts.rules.push(value()); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  opts.k8s ??= path.join(ROOT, "deploy/k8s");
  opts.docs ??= path.join(ROOT, "docs/operations.md");
  opts.dashboard ??= path.join(ROOT, "deploy/grafana/ferry-dashboard.json");
  return { command, opts };
}

function usage(message) {
  console.error(`validate.mjs: ${message}\nusage: node validate.mjs static|metrics|self-test|render|compare [options] (see the header of this file)`);
  process.exit(2);
}

// ------------------------------------------------------------------ schemas

const modelCache = new Map();
async function modelFor(obj) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  const g = group(obj.apiVersion);
  let spec;
  if (g === "monitoring.coreos.com") spec = `@kubernetes-models/prometheus-operator/${obj.apiVersion}/${obj.kind}`;
  else spec = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
  let model = null;
  try {
    const mod = await import(spec);
    model = mod[obj.kind] ?? null;
  } catch {
    model = null;
  }
  modelCache.set(key, model);
  return model;
}

// Wraps `value` so that every property the schema validator reads is noted:
// a key of a plain object that the validator never read is not in the schema
// (the generated validators read every property they know, and enumerate the
// keys of maps such as labels or ConfigMap data).
function track(value, records, where = "") {
  if (value === null || typeof value !== "object") return value;
  const rec = { where, obj: value, read: new Set(), enumerated: false };
  records.push(rec);
  const children = new Map();
  return new Proxy(value, {
    get(target, key) {
      if (typeof key === "string") rec.read.add(key);
      const v = Reflect.get(target, key);
      if (typeof key !== "string" || v === null || typeof v !== "object") return v;
      if (!children.has(key)) {
        children.set(key, track(v, records, Array.isArray(target) ? `${where}[${key}]` : `${where}.${key}`));
      }
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") rec.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      rec.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

async function validateSchema(obj) {
  const Model = await modelFor(obj);
  if (!Model) return [`no schema for ${obj.apiVersion} ${obj.kind} in kubernetes-models or @kubernetes-models/prometheus-operator`];
  const errors = [];
  const records = [];
  try {
    Model.prototype.validate.call(track(JSON.parse(JSON.stringify(obj)), records));
  } catch (e) {
    errors.push(...String(e.message).split(", ").map((m) => `schema: ${m}`));
  }
  for (const r of records) {
    if (r.enumerated || Array.isArray(r.obj)) continue;
    for (const key of Object.keys(r.obj)) {
      if (!r.read.has(key)) errors.push(`unknown field ${r.where ? r.where.slice(1) + "." : ""}${key}`);
    }
  }
  return errors;
}

// -------------------------------------------------------------- docs anchors

function anchorsOf(file) {
  const anchors = new Set();
  const counts = new Map();
  let fence = false;
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (/^\s*```/.test(line)) fence = !fence;
    if (fence) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      // GitHub's slugs: lower case, punctuation dropped, spaces to hyphens.
      let slug = h[1].toLowerCase().replace(/<[^>]*>/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-");
      const n = counts.get(slug) ?? 0;
      counts.set(slug, n + 1);
      if (n > 0) slug = `${slug}-${n}`;
      anchors.add(slug);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

// ------------------------------------------------------------ ferryd's env

function knownEnv(helpFile) {
  if (!helpFile) return null;
  const names = new Set();
  for (const m of fs.readFileSync(helpFile, "utf8").matchAll(/Env:\s*(FERRY_[A-Z0-9_]+)/g)) names.add(m[1]);
  if (names.size === 0) throw new Error(`${helpFile}: no "Env:FERRY_..." entries (is it ferryd --help output?)`);
  return names;
}

// ---------------------------------------------------------- cross references

function labelsMatch(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);
}

function templateLabels(w) {
  if (w.kind === "CronJob") return w.spec?.jobTemplate?.spec?.template?.metadata?.labels ?? {};
  if (w.kind === "Pod") return w.metadata?.labels ?? {};
  return w.spec?.template?.metadata?.labels ?? {};
}

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]);
const LONG_RUNNING = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"]);

function crossCheck(renderName, objs, ctx) {
  const errors = [];
  const err = (obj, msg) => errors.push(`${renderName}: ${id(obj)}: ${msg}`);
  const sameNs = (a, b) => (a.metadata.namespace ?? "") === (b.metadata.namespace ?? "");
  const find = (kind, ns, name) => objs.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? "") === (ns ?? ""));
  const workloads = objs.filter((o) => WORKLOADS.has(o.kind));
  const overlay = renderName !== "base";
  const namespaces = objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name);

  for (const o of objs) {
    if (overlay && !CLUSTER_SCOPED.has(o.kind) && !o.metadata.namespace) err(o, "no namespace in an overlay");
    if (o.metadata.namespace && namespaces.length && !namespaces.includes(o.metadata.namespace)) {
      err(o, `namespace ${o.metadata.namespace} is not the Namespace this render creates (${namespaces.join(", ")})`);
    }
  }

  // ConfigMap data per name, for env checks.
  const configMapData = (ns, name) => find("ConfigMap", ns, name)?.data;

  for (const w of workloads) {
    const spec = podSpecOf(w);
    const labels = templateLabels(w);
    const ns = w.metadata.namespace;
    const external = new Set(String(w.metadata.annotations?.[EXTERNAL_ANNOTATION] ?? "")
      .split(",").map((s) => s.trim()).filter(Boolean));
    for (const s of external) {
      if (!ctx.docsText.includes(`\`${s}\``)) err(w, `external Secret ${s} is not documented in ${path.relative(ROOT, ctx.docs)} (as \`${s}\`)`);
    }
    const secretRef = (name, where, optional) => {
      if (find("Secret", ns, name)) return;
      if (!external.has(name)) {
        err(w, `${where}: Secret ${name} is neither in the manifests nor listed in the ${EXTERNAL_ANNOTATION} annotation${optional ? " (optional: true does not excuse it)" : ""}`);
      }
    };
    const configMapRef = (name, where, optional, key) => {
      const cm = find("ConfigMap", ns, name);
      if (!cm) {
        if (!optional) err(w, `${where}: ConfigMap ${name} does not exist`);
        return;
      }
      if (key !== undefined && !(key in (cm.data ?? {})) && !optional) err(w, `${where}: ConfigMap ${name} has no key ${key}`);
    };

    if (w.kind === "Deployment" || w.kind === "StatefulSet" || w.kind === "DaemonSet" || w.kind === "ReplicaSet") {
      const sel = w.spec?.selector;
      if (sel?.matchExpressions) err(w, "selector.matchExpressions is not checked by this validator; use matchLabels");
      if (!labelsMatch(sel?.matchLabels, labels) || !Object.keys(sel?.matchLabels ?? {}).length) {
        err(w, "spec.selector.matchLabels does not match the pod template's labels");
      }
    }
    const sa = spec?.serviceAccountName;
    if (sa && sa !== "default" && !find("ServiceAccount", ns, sa)) err(w, `serviceAccountName ${sa} does not exist`);

    const volumes = new Map((spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const v of spec?.volumes ?? []) {
      if (v.secret) secretRef(v.secret.secretName, `volume ${v.name}`, v.secret.optional);
      if (v.configMap) configMapRef(v.configMap.name, `volume ${v.name}`, v.configMap.optional);
      for (const src of v.projected?.sources ?? []) {
        if (src.secret) secretRef(src.secret.name, `volume ${v.name}`, src.secret.optional);
        if (src.configMap) configMapRef(src.configMap.name, `volume ${v.name}`, src.configMap.optional);
      }
    }
    for (const ips of spec?.imagePullSecrets ?? []) secretRef(ips.name, "imagePullSecrets", false);

    for (const c of containersOf(w)) {
      const where = `container ${c.name}`;
      const portNames = new Set((c.ports ?? []).map((p) => p.name).filter(Boolean));
      const portNumbers = new Set((c.ports ?? []).map((p) => p.containerPort));
      for (const vm of c.volumeMounts ?? []) {
        if (!volumes.has(vm.name)) err(w, `${where}: volumeMount ${vm.name} has no volume`);
      }
      const env = new Map();
      for (const ef of c.envFrom ?? []) {
        if (ef.configMapRef) {
          configMapRef(ef.configMapRef.name, `${where} envFrom`, ef.configMapRef.optional);
          for (const [k, v] of Object.entries(configMapData(ns, ef.configMapRef.name) ?? {})) env.set(k, { value: v, from: `ConfigMap ${ef.configMapRef.name}` });
        }
        if (ef.secretRef) secretRef(ef.secretRef.name, `${where} envFrom`, ef.secretRef.optional);
      }
      for (const e of c.env ?? []) {
        const cmk = e.valueFrom?.configMapKeyRef;
        const sk = e.valueFrom?.secretKeyRef;
        if (cmk) configMapRef(cmk.name, `${where} env ${e.name}`, cmk.optional, cmk.key);
        if (sk) secretRef(sk.name, `${where} env ${e.name}`, sk.optional);
        env.set(e.name, { value: e.value, from: "env", ref: Boolean(e.valueFrom) });
      }
      if (ctx.env) {
        for (const [k, v] of env) {
          if (k.startsWith("FERRY_") && !ctx.env.has(k)) err(w, `${where}: ${k} (from ${v.from}) is not an environment variable ferryd knows (ferryd --help)`);
        }
      }
      const roles = env.get("FERRY_ROLES");
      if (roles?.value !== undefined) {
        for (const r of String(roles.value).split(",")) {
          if (r && !ROLES.has(r)) err(w, `${where}: FERRY_ROLES names unknown role ${r}`);
        }
      }
      const args = [...(c.command ?? []), ...(c.args ?? [])];
      const serving = args.length === 0 || args.includes("serve");
      if (serving && isFerryImage(c.image)) {
        const brokers = env.get("FERRY_KAFKA_BROKERS");
        if (!brokers || (!brokers.ref && !String(brokers.value ?? "").trim())) {
          err(w, `${where}: ferryd serve without FERRY_KAFKA_BROKERS would start an embedded development Kafka in the pod`);
        }
        if (!env.has("FERRY_OWNER_KEY_FILE") && !env.has("FERRY_OWNER_KEY")) {
          err(w, `${where}: ferryd serve without FERRY_OWNER_KEY(_FILE): the first replica would create the owner policy with a generated key`);
        }
      }
      for (const kind of ["livenessProbe", "readinessProbe", "startupProbe"]) {
        const p = c[kind];
        if (!p) continue;
        const port = p.grpc?.port ?? p.httpGet?.port ?? p.tcpSocket?.port;
        if (port === undefined) continue;
        const ok = typeof port === "number" ? portNumbers.has(port) : portNames.has(port);
        if (!ok) err(w, `${where}: ${kind} port ${port} is not a port of the container`);
      }
      if (overlay) {
        const ref = parseImage(c.image);
        if (!ref.digest && (!ref.tag || ref.tag === "latest")) err(w, `${where}: image ${c.image} has no pinned tag or digest`);
      }
    }
    const spread = [...(spec?.topologySpreadConstraints ?? [])];
    const anti = [...(spec?.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((t) => t.podAffinityTerm),
      ...(spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])];
    for (const t of [...spread, ...anti]) {
      if (t?.labelSelector?.matchLabels && !labelsMatch(t.labelSelector.matchLabels, labels)) {
        err(w, `an anti-affinity/topology-spread labelSelector does not match the workload's own pods`);
      }
    }
  }

  for (const s of objs.filter((o) => o.kind === "Service")) {
    const sel = s.spec?.selector;
    if (!sel || !Object.keys(sel).length) continue;
    const matched = workloads.filter((w) => LONG_RUNNING.has(w.kind) && sameNs(w, s) && labelsMatch(sel, templateLabels(w)));
    if (!matched.length) {
      err(s, `selector ${JSON.stringify(sel)} matches no workload's pods`);
      continue;
    }
    for (const p of s.spec.ports ?? []) {
      const target = p.targetPort ?? p.port;
      for (const w of matched) {
        const has = containersOf(w).some((c) => (c.ports ?? []).some((cp) => (typeof target === "number" ? cp.containerPort === target : cp.name === target)));
        if (!has) err(s, `port ${p.name ?? p.port}: targetPort ${target} is not a container port of ${id(w)}`);
      }
    }
  }

  for (const pdb of objs.filter((o) => o.kind === "PodDisruptionBudget")) {
    const m = workloads.filter((w) => sameNs(w, pdb) && labelsMatch(pdb.spec?.selector?.matchLabels, templateLabels(w)));
    if (!m.length || !Object.keys(pdb.spec?.selector?.matchLabels ?? {}).length) err(pdb, "selector matches no workload");
  }

  for (const hpa of objs.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
    const ref = hpa.spec?.scaleTargetRef ?? {};
    const t = find(ref.kind, hpa.metadata.namespace, ref.name);
    if (!t) err(hpa, `scaleTargetRef ${ref.kind} ${ref.name} does not exist`);
    else if (t.spec?.replicas !== undefined) err(hpa, `${id(t)} sets spec.replicas, which every apply would reset under the autoscaler`);
    else if (ref.apiVersion && ref.apiVersion !== t.apiVersion) err(hpa, `scaleTargetRef apiVersion ${ref.apiVersion} is not ${t.apiVersion}`);
  }

  const monitoredServices = new Set();
  for (const sm of objs.filter((o) => o.kind === "ServiceMonitor")) {
    if (sm.spec?.namespaceSelector) err(sm, "namespaceSelector is not checked by this validator");
    const services = objs.filter((o) => o.kind === "Service" && sameNs(o, sm) && labelsMatch(sm.spec?.selector?.matchLabels, o.metadata.labels));
    if (!services.length) err(sm, "selector matches no Service");
    for (const s of services) {
      if (!sm.spec.jobLabel) monitoredServices.add(s.metadata.name);
      for (const ep of sm.spec.endpoints ?? []) {
        if (ep.port && !(s.spec.ports ?? []).some((p) => p.name === ep.port)) err(sm, `endpoint port ${ep.port} is not a named port of Service ${s.metadata.name}`);
      }
      const pods = workloads.filter((w) => LONG_RUNNING.has(w.kind) && sameNs(w, s) && labelsMatch(s.spec.selector, templateLabels(w)));
      for (const l of sm.spec.podTargetLabels ?? []) {
        for (const w of pods) if (!(l in templateLabels(w))) err(sm, `podTargetLabel ${l} is not a label of ${id(w)}'s pods`);
      }
    }
  }

  for (const pr of objs.filter((o) => o.kind === "PrometheusRule")) {
    const names = new Set();
    for (const g of pr.spec?.groups ?? []) {
      for (const r of g.rules ?? []) {
        if (!r.alert) continue;
        ctx.counts.alerts.add(r.alert);
        if (names.has(r.alert)) err(pr, `alert ${r.alert} defined twice`);
        names.add(r.alert);
        if (!SEVERITIES.has(r.labels?.severity)) err(pr, `alert ${r.alert}: labels.severity must be one of ${[...SEVERITIES].join(", ")}`);
        for (const a of ["summary", "description", "runbook_url"]) {
          if (!r.annotations?.[a]) err(pr, `alert ${r.alert}: no annotations.${a}`);
        }
        const m = /^docs\/operations\.md#([A-Za-z0-9_-]+)$/.exec(r.annotations?.runbook_url ?? "");
        if (!m) err(pr, `alert ${r.alert}: runbook_url must be docs/operations.md#<anchor>`);
        else if (!ctx.anchors.has(m[1])) err(pr, `alert ${r.alert}: runbook_url anchor #${m[1]} is not a heading of ${path.relative(ROOT, ctx.docs)}`);
      }
      for (const r of g.rules ?? []) {
        for (const j of String(r.expr).matchAll(/\bjob\s*=\s*"([^"]*)"/g)) {
          if (!monitoredServices.has(j[1])) err(pr, `${r.alert ?? r.record}: job="${j[1]}" is not the job of any ServiceMonitor-scraped Service (${[...monitoredServices].join(", ") || "none"})`);
        }
      }
    }
  }
  return errors;
}

function isFerryImage(image) {
  const name = parseImage(image).name;
  return name === "ferry" || name.endsWith("/ferry") || name.endsWith("/ferryd");
}

// ---------------------------------------------------------------- dashboard

function dashboardQueries(dash) {
  const out = [];
  const walk = (panels, where) => {
    for (const p of panels ?? []) {
      if (p.type === "row" && p.panels) walk(p.panels, where);
      for (const t of p.targets ?? []) {
        if (t.expr !== undefined) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr, panel: p, refId: t.refId });
      }
    }
  };
  walk(dash.panels, "");
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    const lv = /^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(q ?? "");
    const qr = /^\s*query_result\((.*)\)\s*$/.exec(q ?? "");
    if (lv) out.push({ where: `variable ${v.name}`, expr: lv[1], variable: true });
    else if (qr) out.push({ where: `variable ${v.name}`, expr: qr[1], variable: true });
    else if (q) out.push({ where: `variable ${v.name}`, expr: null, bad: `query ${JSON.stringify(q)} is neither label_values(selector, label) nor query_result(expr)` });
  }
  return out;
}

function checkDashboard(file) {
  const errors = [];
  let dash;
  try {
    dash = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    return { errors: [`${file}: ${e.message}`], queries: [] };
  }
  const err = (m) => errors.push(`${shown(file)}: ${m}`);
  for (const k of ["title", "uid", "panels", "schemaVersion", "templating"]) if (dash[k] === undefined) err(`no ${k}`);
  if (dash.uid && !/^[A-Za-z0-9_-]{1,40}$/.test(dash.uid)) err(`uid ${dash.uid} is not a valid Grafana uid`);
  const vars = new Set((dash.templating?.list ?? []).map((v) => v.name));
  const ids = new Set();
  const all = [];
  const collect = (panels) => {
    for (const p of panels ?? []) {
      all.push(p);
      if (p.panels) collect(p.panels);
    }
  };
  collect(dash.panels);
  for (const p of all) {
    if (typeof p.id !== "number") err(`panel "${p.title}" has no numeric id`);
    else if (ids.has(p.id)) err(`panel id ${p.id} used twice`);
    ids.add(p.id);
    if (!p.gridPos || ["x", "y", "w", "h"].some((k) => typeof p.gridPos[k] !== "number")) err(`panel ${p.id} has no complete gridPos`);
    else if (p.gridPos.x + p.gridPos.w > 24) err(`panel ${p.id} is wider than the grid`);
    if (p.type === "row") continue;
    if (!p.targets?.length) err(`panel ${p.id} "${p.title}" has no queries`);
    const ds = p.datasource?.uid ?? p.datasource;
    if (ds !== "${datasource}") err(`panel ${p.id} "${p.title}": datasource must be the \${datasource} variable`);
    const refs = new Set();
    for (const t of p.targets ?? []) {
      if (!t.refId || refs.has(t.refId)) err(`panel ${p.id}: missing or repeated refId`);
      refs.add(t.refId);
      if (!t.expr) err(`panel ${p.id} ${t.refId}: no expr`);
    }
  }
  const queries = dashboardQueries(dash);
  for (const q of queries) {
    if (q.bad) err(`${q.where}: ${q.bad}`);
    if (!q.expr) continue;
    for (const m of q.expr.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (!m[1].startsWith("__") && !vars.has(m[1])) err(`${q.where}: uses undefined variable $${m[1]}`);
    }
  }
  if (!vars.has("datasource")) err("no datasource variable");
  return { errors, queries, panels: all.filter((p) => p.type !== "row").length };
}

// ------------------------------------------------------------------ static

async function runStatic(opts, { quiet = false } = {}) {
  const errors = [];
  const say = (...a) => { if (!quiet) console.log(...a); };
  if (!opts.out) usage("static needs --out DIR");
  fs.mkdirSync(opts.out, { recursive: true });
  const ctx = {
    docs: opts.docs,
    docsText: fs.existsSync(opts.docs) ? fs.readFileSync(opts.docs, "utf8") : "",
    anchors: fs.existsSync(opts.docs) ? anchorsOf(opts.docs) : new Set(),
    env: knownEnv(opts.ferrydHelp),
    counts: { alerts: new Set() },
  };
  if (!fs.existsSync(opts.docs)) errors.push(`${opts.docs} does not exist`);

  const renders = [["base", path.join(opts.k8s, "base")]];
  const overlaysDir = path.join(opts.k8s, "overlays");
  for (const d of fs.existsSync(overlaysDir) ? fs.readdirSync(overlaysDir).sort() : []) {
    if (fs.statSync(path.join(overlaysDir, d)).isDirectory()) renders.push([d, path.join(overlaysDir, d)]);
  }
  if (renders.length < 2) errors.push(`no overlays under ${overlaysDir}`);

  let objects = 0;
  const kinds = new Map();
  for (const [name, dir] of renders) {
    let items;
    try {
      items = render(dir);
    } catch (e) {
      if (!(e instanceof KustomizeError)) throw e;
      errors.push(`${name}: ${e.message}`);
      continue;
    }
    const objs = items.map((i) => i.obj);
    for (const { obj, source } of items) {
      objects++;
      kinds.set(obj.kind, (kinds.get(obj.kind) ?? 0) + 1);
      for (const e of await validateSchema(obj)) errors.push(`${name}: ${id(obj)} (${source}): ${e}`);
    }
    errors.push(...crossCheck(name, objs, ctx));
    const rules = objs.filter((o) => o.kind === "PrometheusRule");
    if (rules.length) {
      const groups = rules.flatMap((r) => r.spec?.groups ?? []);
      fs.writeFileSync(path.join(opts.out, `rules-${name}.yaml`), yaml.dump({ groups }, { lineWidth: -1, noRefs: true }));
    } else {
      errors.push(`${name}: no PrometheusRule`);
    }
    // The environment of every ferryd serve container (ConfigMaps through
    // envFrom, then literal env; values from Secrets are left out), for
    // `ferryd config print` in scripts/check-deploy.
    const envDir = path.join(opts.out, "workload-env");
    fs.mkdirSync(envDir, { recursive: true });
    for (const w of objs.filter((o) => WORKLOADS.has(o.kind))) {
      for (const c of podSpecOf(w)?.containers ?? []) {
        const args = [...(c.command ?? []), ...(c.args ?? [])];
        if (!isFerryImage(c.image) || !(args.length === 0 || args.includes("serve"))) continue;
        const env = new Map();
        for (const ef of c.envFrom ?? []) {
          const cm = ef.configMapRef && objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ef.configMapRef.name && o.metadata.namespace === w.metadata.namespace);
          for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(k, v);
        }
        for (const e of c.env ?? []) if (e.value !== undefined) env.set(e.name, e.value);
        fs.writeFileSync(path.join(envDir, `${name}__${w.kind}-${w.metadata.name}__${c.name}.env`),
          [...env].map(([k, v]) => `${k}=${v}`).join("\n") + "\n");
      }
    }
    if (name !== "base") {
      const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "ferry-config");
      if (cm) {
        fs.writeFileSync(path.join(opts.out, `config-${name}.env`),
          Object.entries(cm.data ?? {}).map(([k, v]) => `${k}=${v}`).join("\n") + "\n");
      }
    }
    say(`  ${name}: ${objs.length} objects rendered (${shown(dir)})`);
  }

  // Links into docs/operations.md (from itself, deploy/README.md and the
  // manifests' comments) must name one of its headings.
  const linkSources = [opts.docs, path.join(ROOT, "deploy/README.md")];
  const walkYaml = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walkYaml(path.join(d, e.name));
      else if (/\.ya?ml$/.test(e.name)) linkSources.push(path.join(d, e.name));
    }
  };
  walkYaml(opts.k8s);
  let links = 0;
  for (const f of linkSources.filter((f) => fs.existsSync(f))) {
    const text = fs.readFileSync(f, "utf8");
    const found = [...text.matchAll(/operations\.md#([A-Za-z0-9_-]+)/g)].map((m) => m[1]);
    if (f === opts.docs) found.push(...[...text.matchAll(/\]\(#([A-Za-z0-9_-]+)\)/g)].map((m) => m[1]));
    for (const a of found) {
      links++;
      if (!ctx.anchors.has(a)) errors.push(`${shown(f)}: link to docs/operations.md#${a}: no such heading`);
    }
  }

  const dash = checkDashboard(opts.dashboard);
  errors.push(...dash.errors);
  const recs = [];
  for (const [i, q] of dash.queries.entries()) {
    if (!q.expr) continue;
    const expr = substituteGrafana(q.expr);
    const r = inspect(expr);
    for (const e of r.errors) errors.push(`dashboard ${q.where}: ${e}`);
    recs.push({ record: `dashboard:query_${i}`, expr });
  }
  fs.writeFileSync(path.join(opts.out, "dashboard-exprs.yaml"),
    yaml.dump({ groups: [{ name: "dashboard-queries", rules: recs }] }, { lineWidth: -1 }));

  say(`  schema-validated ${objects} objects over ${renders.length} renders (${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")})`);
  say(`  alerts: ${ctx.counts.alerts.size} (${[...ctx.counts.alerts].join(", ")})`);
  say(`  dashboard: ${dash.panels ?? 0} panels, ${dash.queries.length} queries${ctx.env ? `; ferryd env names known: ${ctx.env.size}` : ""}; links into docs/operations.md: ${links}`);
  return { errors, objects, alerts: ctx.counts.alerts.size, queries: dash.queries.length };
}

// ----------------------------------------------------------------- metrics

function parseScrape(file) {
  const types = new Map();
  const labels = new Map();
  const lines = fs.readFileSync(file, "utf8").split("\n");
  for (const line of lines) {
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)\s*$/.exec(line);
    if (t) types.set(t[1], t[2]);
  }
  const family = (sample) => {
    if (types.has(sample)) return sample;
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      if (sample.endsWith(suffix) && ["histogram", "summary"].includes(types.get(sample.slice(0, -suffix.length)))) return sample.slice(0, -suffix.length);
    }
    return null;
  };
  for (const line of lines) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s/.exec(line);
    if (!m) continue;
    const f = family(m[1]);
    if (!f) continue;
    if (!labels.has(f)) labels.set(f, new Set());
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) if (l[1] !== "le" && l[1] !== "quantile") labels.get(f).add(l[1]);
  }
  // Series names -> {family, type, component}
  const series = new Map();
  for (const [name, type] of types) {
    series.set(name, { family: name, type, component: null });
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) series.set(name + s, { family: name, type, component: s });
    if (type === "summary") for (const s of ["_sum", "_count"]) series.set(name + s, { family: name, type, component: s });
  }
  return { types, labels, series };
}

function distance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

function runMetrics(opts) {
  if (!opts.scrape) usage("metrics needs --scrape FILE");
  const scrape = parseScrape(opts.scrape);
  if (scrape.types.size === 0) return { errors: [`${opts.scrape}: no # TYPE lines: not a /metrics scrape`] };
  const errors = [];
  const uses = [];
  const dash = checkDashboard(opts.dashboard);
  for (const q of dash.queries) if (q.expr) uses.push({ source: `${shown(opts.dashboard)} ${q.where}`, expr: substituteGrafana(q.expr) });
  const recorded = new Set();
  let alerts = 0;
  for (const f of opts.rules) {
    const doc = yaml.load(fs.readFileSync(f, "utf8"));
    for (const g of doc?.groups ?? []) {
      for (const r of g.rules ?? []) {
        if (r.record) recorded.add(r.record);
        if (r.alert) alerts++;
        uses.push({ source: `${path.basename(f)} ${r.alert ?? r.record}`, expr: String(r.expr) });
      }
    }
  }
  const used = new Map();
  for (const u of uses) {
    const r = inspect(u.expr);
    for (const e of r.errors) errors.push(`${u.source}: ${e}`);
    for (const s of r.selectors) {
      if (!s.name) continue;
      if (!used.has(s.name)) used.set(s.name, new Set());
      used.get(s.name).add(u.source);
      const known = scrape.series.get(s.name);
      if (!known) {
        if (recorded.has(s.name)) continue;
        const near = [...scrape.series.keys()].map((n) => [distance(n, s.name), n]).sort((a, b) => a[0] - b[0])[0];
        errors.push(`${u.source}: metric ${s.name} is not exported by ferryd (no # TYPE line for it in ${path.basename(opts.scrape)})${near && near[0] <= 4 ? `; did you mean ${near[1]}?` : ""}`);
        continue;
      }
      const have = scrape.labels.get(known.family);
      if (have) {
        for (const l of s.labels) {
          if (l === "le" && known.component === "_bucket") continue;
          if (!have.has(l) && !TARGET_LABELS.has(l)) {
            errors.push(`${u.source}: ${s.text}: ${known.family} has no label ${l} (it has: ${[...have].join(", ") || "none"}; target labels: ${[...TARGET_LABELS].join(", ")})`);
          }
        }
      }
    }
    for (const c of r.calls) {
      const known = scrape.series.get(c.metric);
      if (!known) continue;
      const counterLike = known.type === "counter" || known.component !== null;
      if (COUNTER_FUNCTIONS.has(c.fn) && !counterLike) errors.push(`${u.source}: ${c.fn}() of ${c.metric}, a ${known.type}: use it on counters only`);
      if (GAUGE_FUNCTIONS.has(c.fn) && known.type !== "gauge") errors.push(`${u.source}: ${c.fn}() of ${c.metric}, a ${known.type}: use it on gauges only`);
    }
  }
  const families = new Set([...used.keys()].map((n) => scrape.series.get(n)?.family ?? n));
  console.log(`  metric names: ${used.size} distinct series names (${families.size} metric families) in ${uses.length} expressions ` +
    `(${dash.queries.length} dashboard queries, ${alerts} alerts in ${opts.rules.length} rule files), checked against ${scrape.types.size} families in the scrape`);
  return { errors, used: used.size };
}

// ---------------------------------------------------------------- self-test

const MUTATIONS = [
  { name: "Service selector that matches no pods", file: "base/services.yaml", from: "    app.kubernetes.io/component: api\n  ports:\n    - name: grpc\n      port: 50051\n      targetPort: grpc\n      protocol: TCP\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ferry-grpc-headless", to: "    app.kubernetes.io/component: apii\n  ports:\n    - name: grpc\n      port: 50051\n      targetPort: grpc\n      protocol: TCP\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ferry-grpc-headless", expect: "matches no workload" },
  { name: "readiness probe on a port the container lacks", file: "base/deployment-api.yaml", from: "          readinessProbe:\n            grpc:\n              port: 50051", to: "          readinessProbe:\n            grpc:\n              port: 50052", expect: "readinessProbe port 50052" },
  { name: "misspelt field (readinesProbe)", file: "base/deployment-d2c.yaml", from: "          readinessProbe:", to: "          readinesProbe:", expect: "unknown field" },
  { name: "kustomization field the renderer does not implement", file: "overlays/dev/kustomization.yaml", from: "namespace: ferry-dev\n", to: "namespace: ferry-dev\ncommonLabels:\n  team: iot\n", expect: "unsupported kustomization field" },
  { name: "misspelt ferryd environment variable", file: "base/configmap.yaml", from: "  FERRY_LOG_LEVEL: info", to: "  FERRY_LOG_LEVL: info", expect: "not an environment variable ferryd knows", needsEnv: true },
  { name: "Secret neither in the manifests nor documented as external", file: "base/deployment-api.yaml", from: "            secretName: ferry-owner-key", to: "            secretName: ferry-owner-keys", expect: "Secret ferry-owner-keys" },
  { name: "runbook anchor missing from docs/operations.md", file: "base/prometheusrule.yaml", from: "docs/operations.md#ferryd2cdeadletters", to: "docs/operations.md#ferryd2cdeadleters", expect: "anchor #ferryd2cdeadleters" },
  { name: "alert on a job no ServiceMonitor scrapes", file: "base/prometheusrule.yaml", from: 'ferry_ready{job="ferry-metrics"}', to: 'ferry_ready{job="ferry"}', expect: 'job="ferry"' },
  { name: "empty Kafka brokers (embedded Kafka in a pod)", file: "overlays/prod/config.yaml", from: "  FERRY_KAFKA_BROKERS: kafka-0", to: "  FERRY_KAFKA_BROKERS: \"\"\n  FERRY_X_UNUSED: kafka-0", expect: "embedded development Kafka" },
  { name: "file mode with a leading zero (octal to kubectl, decimal to js-yaml)", file: "base/job-migrate.yaml", from: "defaultMode: 288", to: "defaultMode: 0440", expect: "leading zero" },
  { name: "two patches in one patches file", file: "overlays/prod/hpa.yaml", from: "  maxReplicas: 12\n", to: "  maxReplicas: 12\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ferry-config\n", expect: "exactly one document" },
  { name: "patch whose target does not exist", file: "overlays/prod/d2c.yaml", from: "  name: ferry-d2c\nspec:\n  replicas: 4", to: "  name: ferry-d2\nspec:\n  replicas: 4", expect: "no target object" },
];

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) copyDir(path.join(from, e.name), path.join(to, e.name));
    else fs.copyFileSync(path.join(from, e.name), path.join(to, e.name));
  }
}

async function runSelfTest(opts) {
  if (!opts.out) usage("self-test needs --out DIR");
  const errors = [];
  // The unbroken manifests must pass, so that each failure below is the
  // mutation's doing.
  const baseline = await runStatic({ ...opts, out: path.join(opts.out, "selftest-baseline") }, { quiet: true });
  if (baseline.errors.length) {
    return { errors: [`self-test: the unbroken manifests do not pass, fix them first: ${baseline.errors.join(" | ")}`] };
  }
  let n = 0;
  for (const m of MUTATIONS) {
    if (m.needsEnv && !opts.ferrydHelp) continue;
    const dir = path.join(opts.out, `selftest-${n++}`);
    fs.rmSync(dir, { recursive: true, force: true });
    copyDir(opts.k8s, path.join(dir, "k8s"));
    const f = path.join(dir, "k8s", m.file);
    const text = fs.readFileSync(f, "utf8");
    if (!text.includes(m.from)) {
      errors.push(`self-test "${m.name}": ${m.file} no longer contains the text to break; update MUTATIONS`);
      continue;
    }
    fs.writeFileSync(f, text.replace(m.from, m.to));
    const r = await runStatic({ ...opts, k8s: path.join(dir, "k8s"), out: path.join(dir, "out") }, { quiet: true });
    const hit = r.errors.find((e) => e.includes(m.expect));
    if (hit) console.log(`  self-test: ${m.name}: fails as it should: ${hit}`);
    else errors.push(`self-test "${m.name}": the checks did not fail (expected an error containing "${m.expect}"; got ${r.errors.length ? r.errors.join(" | ") : "none"})`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`  self-test: ${n} broken copies of the manifests checked`);
  return { errors };
}

// ----------------------------------------------------------------- compare

function compareRender(dir, file) {
  const sorted = (v) => (Array.isArray(v) ? v.map(sorted)
    : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  const key = (o) => `${o.apiVersion} ${id(o)}`;
  const mine = new Map(render(path.resolve(dir)).map(({ obj }) => [key(obj), JSON.stringify(sorted(obj))]));
  const theirs = new Map(yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean).map((o) => [key(o), JSON.stringify(sorted(o))]));
  const errors = [];
  for (const [k, v] of theirs) {
    if (!mine.has(k)) errors.push(`${shown(dir)}: ${k} is rendered by kustomize, not by kustomize.mjs`);
    else if (mine.get(k) !== v) errors.push(`${shown(dir)}: ${k} differs:\n      kustomize.mjs: ${mine.get(k)}\n      kustomize:     ${v}`);
  }
  for (const k of mine.keys()) if (!theirs.has(k)) errors.push(`${shown(dir)}: ${k} is rendered by kustomize.mjs, not by kustomize`);
  console.log(`  ${shown(dir)}: ${theirs.size} objects from kubectl kustomize, ${errors.length} differences from kustomize.mjs`);
  return { errors };
}

// -------------------------------------------------------------------- main

const { command, opts } = parseArgs(process.argv.slice(2));
let result;
try {
  if (command === "static") result = await runStatic(opts);
  else if (command === "metrics") result = runMetrics(opts);
  else if (command === "self-test") result = await runSelfTest(opts);
  else if (command === "compare") {
    if (!opts.dir || !opts.file) usage("compare needs a kustomization folder and a file");
    result = compareRender(opts.dir, opts.file);
  } else if (command === "render") {
    if (!opts.dir) usage("render needs a kustomization folder");
    process.stdout.write(render(path.resolve(opts.dir)).map(({ obj }) => yaml.dump(obj, { lineWidth: -1, noRefs: true })).join("---\n"));
    process.exit(0);
  }
  else usage(`unknown command ${command ?? "(none)"}`);
} catch (e) {
  console.error(`validate.mjs ${command}: ${e.stack ?? e}`);
  process.exit(1);
}
if (result.errors.length) {
  console.error(`FAILED: ${result.errors.length} problem(s):`);
  for (const e of result.errors) console.error(`  - ${e}`);
  process.exit(1);
}
console.log(`  ${command}: ok`);
