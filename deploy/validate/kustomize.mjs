// The subset of kustomize that Ferry's manifests use, to render overlays
// offline (kustomize itself is not packaged in Debian 12).
//
// Supported kustomization.yaml fields:
//   apiVersion (kustomize.config.k8s.io/v1beta1), kind (Kustomization),
//   resources  files (multi-document YAML) and directories (other
//              kustomizations), local paths only
//   namespace  set on every namespaced object
//   images     name, newName, newTag, digest; applied to the containers and
//              initContainers of every pod template; an entry that matches no
//              container is an error (kustomize would silently ignore it)
//   patches    `- path: FILE` only: FILE holds one document, a strategic
//              merge patch of the object with its apiVersion, kind and name
//              (the target must exist)
// Any other field, and any other form of these, is an error: extend this file
// before using it in a kustomization.
//
// Strategic merge, as kustomize does it for built-in kinds: maps merge
// recursively, a null value deletes the key, lists of objects with a known
// merge key (containers and initContainers by name, env by name, volumes by
// name, volumeMounts by mountPath, container ports by containerPort, Service
// ports by port, imagePullSecrets by name, topologySpreadConstraints by
// topologyKey) merge by that key, where an item `$patch: delete` removes the
// matching item; every other list is replaced. For custom resources
// (ServiceMonitor, PrometheusRule, ...) kustomize has no schema and replaces
// lists, as here. Other `$`-directives are refused.

import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

export class KustomizeError extends Error {}

const FIELDS = new Set(["apiVersion", "kind", "resources", "namespace", "images", "patches"]);
const IMAGE_FIELDS = new Set(["name", "newName", "newTag", "digest"]);
const PATCH_FIELDS = new Set(["path"]);

// Kinds that are not namespaced (of those a kustomization might hold).
export const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
  "StorageClass", "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
  "IngressClass", "RuntimeClass",
]);

const BUILTIN_GROUPS = new Set(["", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
  "rbac.authorization.k8s.io"]);

export function group(apiVersion) {
  return apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
}

// A path for messages: relative to the working folder when inside it.
export function shown(p) {
  const r = path.relative(process.cwd(), p);
  return r.startsWith("..") ? p : r;
}

export function id(obj) {
  const ns = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${obj.kind} ${ns}${obj.metadata?.name}`;
}

export function loadDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  // 0440 is octal to YAML 1.1 parsers (kubectl, sigs.k8s.io/yaml) and
  // decimal 440 to YAML 1.2 ones (js-yaml, here): refuse the ambiguity.
  for (const [i, line] of text.split("\n").entries()) {
    if (/:\s+0[0-9]+\s*(#.*)?$/.test(line)) {
      throw new KustomizeError(`${shown(file)}:${i + 1}: ${line.trim()}: a number with a leading zero means octal to kubectl but decimal here; write it in decimal`);
    }
  }
  let docs;
  try {
    docs = yaml.loadAll(text, null, { filename: file });
  } catch (e) {
    throw new KustomizeError(`${file}: ${e.message}`);
  }
  return docs.filter((d) => d !== null && d !== undefined);
}

function findKustomization(dir) {
  for (const name of ["kustomization.yaml", "kustomization.yml", "Kustomization"]) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  throw new KustomizeError(`${dir}: no kustomization.yaml`);
}

// Renders the kustomization in `dir`; returns [{obj, source}].
export function render(dir, stack = []) {
  const kfile = findKustomization(dir);
  if (stack.includes(kfile)) throw new KustomizeError(`${kfile}: cycle through ${stack.join(" -> ")}`);
  const docs = loadDocs(kfile);
  if (docs.length !== 1) throw new KustomizeError(`${kfile}: expected one document`);
  const k = docs[0];
  for (const key of Object.keys(k)) {
    if (!FIELDS.has(key)) {
      throw new KustomizeError(`${kfile}: unsupported kustomization field "${key}" (deploy/validate/kustomize.mjs implements: ${[...FIELDS].join(", ")})`);
    }
  }
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    throw new KustomizeError(`${kfile}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization`);
  }

  let items = [];
  for (const r of list(k.resources, kfile, "resources")) {
    if (typeof r !== "string" || /^[a-z]+:\/\//i.test(r) || r.startsWith("git@")) {
      throw new KustomizeError(`${kfile}: resources entry ${JSON.stringify(r)}: only local files and directories`);
    }
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) throw new KustomizeError(`${kfile}: resource ${r} does not exist`);
    if (fs.statSync(p).isDirectory()) {
      items.push(...render(p, [...stack, kfile]));
    } else {
      for (const obj of loadDocs(p)) {
        if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
          throw new KustomizeError(`${p}: every document needs apiVersion, kind and metadata.name`);
        }
        items.push({ obj, source: shown(p) });
      }
    }
  }

  for (const p of list(k.patches, kfile, "patches")) {
    if (typeof p !== "object" || p === null) throw new KustomizeError(`${kfile}: patches entries must be maps`);
    for (const key of Object.keys(p)) {
      if (!PATCH_FIELDS.has(key)) {
        throw new KustomizeError(`${kfile}: patches field "${key}" is not supported (only "path": a strategic merge patch file)`);
      }
    }
    const file = path.resolve(dir, p.path);
    const patchDocs = loadDocs(file);
    // One patch per file: older kustomize releases refuse several documents
    // in a `patches` file (kubernetes-sigs/kustomize#3929; kubectl 1.32's
    // kustomize 5.5 accepts them), so keep to what works everywhere.
    if (patchDocs.length !== 1) {
      throw new KustomizeError(`${shown(file)}: a patches file must hold exactly one document (older kustomize releases refuse more), found ${patchDocs.length}`);
    }
    for (const patch of patchDocs) {
      const where = `${shown(file)} (${patch.kind} ${patch.metadata?.name})`;
      if (!patch.apiVersion || !patch.kind || !patch.metadata?.name) {
        throw new KustomizeError(`${where}: a patch needs apiVersion, kind and metadata.name to find its target`);
      }
      const targets = items.filter(({ obj }) =>
        obj.kind === patch.kind && obj.metadata.name === patch.metadata.name &&
        group(obj.apiVersion) === group(patch.apiVersion) &&
        (!patch.metadata.namespace || patch.metadata.namespace === obj.metadata.namespace));
      if (targets.length !== 1) {
        throw new KustomizeError(`${where}: ${targets.length === 0 ? "no" : "more than one"} target object`);
      }
      const builtin = BUILTIN_GROUPS.has(group(patch.apiVersion));
      targets[0].obj = merge(targets[0].obj, patch, [], { kind: patch.kind, builtin, where });
      targets[0].source += ` + ${shown(file)}`;
    }
  }

  for (const img of list(k.images, kfile, "images")) {
    for (const key of Object.keys(img)) {
      if (!IMAGE_FIELDS.has(key)) throw new KustomizeError(`${kfile}: images field "${key}" is not supported`);
    }
    if (!img.name) throw new KustomizeError(`${kfile}: an images entry needs a name`);
    let matched = 0;
    for (const { obj } of items) {
      for (const c of containersOf(obj)) {
        const ref = parseImage(c.image);
        if (ref.name !== img.name) continue;
        matched++;
        const name = img.newName ?? ref.name;
        if (img.digest) c.image = `${name}@${img.digest}`;
        else if (img.newTag !== undefined) c.image = `${name}:${img.newTag}`;
        else c.image = name + (ref.digest ? `@${ref.digest}` : ref.tag ? `:${ref.tag}` : "");
      }
    }
    if (matched === 0) throw new KustomizeError(`${kfile}: images entry "${img.name}" matches no container image`);
  }

  if (k.namespace !== undefined) {
    if (typeof k.namespace !== "string" || !k.namespace) throw new KustomizeError(`${kfile}: namespace must be a name`);
    for (const { obj } of items) {
      if (!CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
    }
  }

  const seen = new Map();
  for (const { obj, source } of items) {
    const key = `${group(obj.apiVersion)}|${id(obj)}`;
    if (seen.has(key)) throw new KustomizeError(`${id(obj)} defined twice (${seen.get(key)} and ${source})`);
    seen.set(key, source);
  }
  return items;
}

function list(value, kfile, field) {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new KustomizeError(`${kfile}: ${field} must be a list`);
  return value;
}

export function podSpecOf(obj) {
  switch (obj.kind) {
    case "Deployment": case "StatefulSet": case "DaemonSet": case "ReplicaSet": case "Job":
      return obj.spec?.template?.spec;
    case "CronJob":
      return obj.spec?.jobTemplate?.spec?.template?.spec;
    case "Pod":
      return obj.spec;
    default:
      return undefined;
  }
}

export function containersOf(obj) {
  const spec = podSpecOf(obj);
  if (!spec) return [];
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

// registry.example.com:5000/ferry/ferry:0.1.0@sha256:... -> {name, tag, digest}
export function parseImage(image) {
  let rest = String(image);
  let digest;
  const at = rest.indexOf("@");
  if (at >= 0) { digest = rest.slice(at + 1); rest = rest.slice(0, at); }
  let tag;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) { tag = rest.slice(colon + 1); rest = rest.slice(0, colon); }
  return { name: rest, tag, digest };
}

function mergeKey(ctx, pathParts) {
  if (!ctx.builtin) return undefined;
  const field = pathParts[pathParts.length - 1];
  switch (field) {
    case "containers": case "initContainers": case "ephemeralContainers": case "env":
    case "volumes": case "imagePullSecrets":
      return "name";
    case "volumeMounts":
      return "mountPath";
    case "topologySpreadConstraints":
      return "topologyKey";
    case "ports":
      // Container ports merge by containerPort, a Service's by port.
      return ctx.kind === "Service" && pathParts.join(".") === "spec.ports" ? "port" : "containerPort";
    default:
      return undefined;
  }
}

function isMap(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function merge(base, patch, pathParts, ctx) {
  if (!isMap(patch)) return clone(patch);
  const out = isMap(base) ? { ...base } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) {
      throw new KustomizeError(`${ctx.where}: directive ${key} at ${[...pathParts, key].join(".")} is not supported`);
    }
    const here = [...pathParts, key];
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value)) {
      const mk = mergeKey(ctx, here);
      if (mk && value.every(isMap)) out[key] = mergeList(Array.isArray(out[key]) ? out[key] : [], value, mk, here, ctx);
      else {
        for (const v of value) {
          if (isMap(v) && Object.keys(v).some((k) => k.startsWith("$"))) {
            throw new KustomizeError(`${ctx.where}: directives in list ${here.join(".")} (no merge key here) are not supported`);
          }
        }
        out[key] = clone(value);
      }
    } else if (isMap(value)) {
      out[key] = merge(out[key], value, here, ctx);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function mergeList(base, patch, key, pathParts, ctx) {
  const out = base.map(clone);
  for (const item of patch) {
    const { $patch: directive, ...rest } = item;
    if (directive !== undefined && directive !== "delete") {
      throw new KustomizeError(`${ctx.where}: $patch: ${directive} in ${pathParts.join(".")} is not supported`);
    }
    if (rest[key] === undefined) {
      throw new KustomizeError(`${ctx.where}: an item of ${pathParts.join(".")} has no merge key "${key}"`);
    }
    const i = out.findIndex((o) => isMap(o) && o[key] === rest[key]);
    if (directive === "delete") {
      if (i < 0) throw new KustomizeError(`${ctx.where}: $patch: delete of ${pathParts.join(".")} ${key}=${rest[key]}: no such item`);
      out.splice(i, 1);
    } else if (i >= 0) {
      out[i] = merge(out[i], rest, [...pathParts, String(rest[key])], ctx);
    } else {
      out.push(merge({}, rest, [...pathParts, String(rest[key])], ctx));
    }
  }
  return out;
}

function clone(v) {
  return v === undefined ? v : JSON.parse(JSON.stringify(v));
}
