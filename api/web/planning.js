// CIM planning review in the viewer (after viewer.js, whose `viewer`, `cim`, `t`, `TEXT`,
// `openPanel`, `detail` and `restyle` it uses): design schemes (switched, or side by side with
// the baseline), the city's parcels, measuring distances, heights and areas, a horizontal
// clipping plane, sun shadows on a chosen day and time (大寒日 by default), the analyses
// (height limits, parcel indicators, sunlight) run on a picked building or parcel with their
// results drawn on the model, and a link that reopens the same view.
"use strict";

Object.assign(TEXT.zh, {
  planning: "规划审查", scenario: "方案", baseline: "现状", sideBySide: "与现状左右对比",
  showParcels: "显示控规地块", distance: "测距", heightTool: "测高", areaTool: "测面积",
  clear: "清除", clip: "水平剖切", shadows: "日照阴影", share: "复制当前视图链接",
  copied: "链接已复制", parcel: "地块", heightLimits: "控高分析", indicators: "指标核算",
  sunlight: "日照分析", running: "分析中…", breaches: "超限建筑", none: "无",
  points: "采样点", failing: "不满足", passing: "满足", far: "容积率", density: "建筑密度",
  maxHeight: "最大高度", report: "下载报告 (PDF)", clickPoints: "在模型上点击测量点",
  landUse: "用地性质", limit: "限值", windows: "不满足的窗户", overBy: "超出",
});
Object.assign(TEXT.en, {
  planning: "Planning review", scenario: "Scenario", baseline: "Baseline",
  sideBySide: "Side by side with the baseline", showParcels: "Show parcels",
  distance: "Distance", heightTool: "Height", areaTool: "Area", clear: "Clear",
  clip: "Horizontal cut", shadows: "Sun shadows", share: "Copy a link to this view",
  copied: "Link copied", parcel: "Parcel", heightLimits: "Height limits",
  indicators: "Parcel indicators", sunlight: "Sunlight", running: "Running…",
  breaches: "Buildings above their limit", none: "none", points: "Points", failing: "failing",
  passing: "passing", far: "FAR", density: "Density", maxHeight: "Max height",
  report: "Download the report (PDF)", clickPoints: "Click points on the model",
  landUse: "Land use", limit: "limit", windows: "Failing windows", overBy: "over by",
});

const plan = (cim.planning = {
  doc: null, scenario: "", scheme: null, left: null, hidden: new Set(), marked: new Set(),
  parcels: null, measure: { mode: null, points: [], result: null, entities: [] },
  clip: null, results: null, job: null, sun: viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection()),
});
const RED = Cesium.Color.fromCssColorString("#e0312b");
const BEIJING_MS = 8 * 3600 * 1000;
const $ = (id) => document.getElementById(id);

// --- the tileset's style, decorated: a scheme's replaced objects hidden, results marked red
cim.decorate = (style) => {
  if (!plan.hidden.size && !plan.marked.size) return style;
  const out = new Cesium.Cesium3DTileStyle();
  const base = style.show, colour = style.color;
  const showOf = (f) => !plan.hidden.has(String(f.getProperty("id"))) && (base ? base.evaluate(f) : true);
  const colourOf = (f, result) => (plan.marked.has(String(f.getProperty("id")))
    ? Cesium.Color.clone(RED, result)
    : colour ? colour.evaluateColor(f, result) : Cesium.Color.clone(Cesium.Color.WHITE, result));
  out.show = { evaluate: showOf };
  out.color = { evaluate: colourOf, evaluateColor: colourOf };
  return out;
};

// --- design schemes
async function loadPlanning(code) {
  plan.doc = null;
  const answer = await fetch(`/planning/${encodeURIComponent(code)}`);
  plan.doc = answer.ok ? await answer.json() : { scenarios: [], parcels: 0, days: {} };
  const select = $("scenario");
  select.replaceChildren(select.options[0]);
  plan.doc.scenarios.forEach((s) => {
    const option = document.createElement("option"); option.value = option.textContent = s.scenario;
    select.append(option);
  });
  if (!$("shadow-date").value && plan.doc.days) $("shadow-date").value = plan.doc.days["大寒"] || "";
  $("parcels-on").disabled = !plan.doc.parcels;
}

async function showScenario(name) {
  plan.scenario = name;
  if (plan.scheme) { viewer.scene.primitives.remove(plan.scheme); plan.scheme = null; }
  const found = plan.doc && plan.doc.scenarios.find((s) => s.scenario === name);
  plan.hidden = new Set(found ? found.replaces : []);
  if (found) {
    plan.scheme = await Cesium.Cesium3DTileset.fromUrl(
      `/collections/${encodeURIComponent(found.collection)}/3dtiles/tileset.json`, { maximumScreenSpaceError: 8 });
    clipTileset(plan.scheme);
    plan.scheme.shadows = cim.tileset ? cim.tileset.shadows : plan.scheme.shadows;
    viewer.scene.primitives.add(plan.scheme);
  }
  restyle();
  await sideBySide($("compare-on").checked && !!found);
  saveView();
}

async function sideBySide(on) {
  if (plan.left) { viewer.scene.primitives.remove(plan.left); plan.left = null; }
  const right = on ? Cesium.SplitDirection.RIGHT : Cesium.SplitDirection.NONE;
  if (cim.tileset) cim.tileset.splitDirection = right;
  if (plan.scheme) plan.scheme.splitDirection = right;
  if (on && cim.tileset) {  // the baseline as it is, on the left
    plan.left = await Cesium.Cesium3DTileset.fromUrl(
      `/collections/${encodeURIComponent(cim.city)}/3dtiles/tileset.json`, { maximumScreenSpaceError: 8 });
    plan.left.splitDirection = Cesium.SplitDirection.LEFT;
    clipTileset(plan.left);
    viewer.scene.primitives.add(plan.left);
  }
  viewer.scene.splitPosition = 0.5;
  cim.sideBySide = on;
}

// --- parcels
async function showParcels(on) {
  if (plan.parcels) { viewer.dataSources.remove(plan.parcels, true); plan.parcels = null; }
  if (!on || !cim.city) return;
  const url = `/collections/${encodeURIComponent(cim.city)}-parcels/items?limit=10000`;
  const source = await Cesium.GeoJsonDataSource.load(url, {
    stroke: Cesium.Color.fromCssColorString("#2563eb"), fill: Cesium.Color.fromCssColorString("#2563eb").withAlpha(0.18),
    strokeWidth: 2, clampToGround: false,
  });
  // drawn just above the ground (at it, the globe would hide them), outlined
  const above = ((plan.doc && plan.doc.ground) || 0) + 0.3;
  source.entities.values.forEach((e) => {
    e.parcel = e.properties.getValue(Cesium.JulianDate.now());
    if (e.polygon) {
      e.polygon.height = above;
      e.polygon.outline = true;
      e.polygon.outlineColor = Cesium.Color.fromCssColorString("#2563eb");
    }
  });
  plan.parcels = source;
  await viewer.dataSources.add(source);
  // their polygons are made in web workers: counted as shown once they are drawn
  await new Promise((resolve) => {
    const ready = () => {
      if (!viewer.dataSourceDisplay.ready) return;
      viewer.scene.postRender.removeEventListener(ready); resolve();
    };
    viewer.scene.postRender.addEventListener(ready);
    viewer.scene.requestRender();
  });
  cim.parcelsShown = source.entities.values.length;
}

function showParcel(entity) {
  const p = entity.parcel;
  openPanel("parcel");
  detail(t("parcel"), p.code || entity.id);
  if (p.land_use) detail(t("landUse"), p.land_use);
  [["far_limit", t("far")], ["density_limit", `${t("density")} %`], ["height_limit", `${t("maxHeight")} m`]]
    .forEach(([k, label]) => { if (p[k] !== null && p[k] !== undefined) detail(`${label} (${t("limit")})`, p[k]); });
  cim.selectedParcel = p.code || String(entity.id);
  actions([["indicators", () => run("parcel-indicators", { parcels: [cim.selectedParcel] })],
           ["heightLimits", () => run("height-limits", { parcels: [cim.selectedParcel] })]]);
}

// --- analyses
function actions(list) {
  const box = $("analysis");
  const row = document.createElement("div"); row.className = "actions";
  list.forEach(([key, go]) => {
    const b = document.createElement("button"); b.type = "button"; b.dataset.i18n = key; b.textContent = t(key);
    b.dataset.action = key; b.addEventListener("click", go); row.append(b);
  });
  box.replaceChildren(row);
}

cim.onFeature = (id) => {
  actions([["sunlight", () => run("sunlight", { buildings: [id] })],
           ["heightLimits", () => run("height-limits", {})]]);
};

async function run(process, inputs) {
  const box = $("analysis");
  const note = document.createElement("p"); note.className = "summary"; note.textContent = t("running");
  box.querySelectorAll(".result").forEach((el) => el.remove());
  note.classList.add("result"); box.append(note);
  const body = { inputs: { city: cim.city, ...inputs } };
  if (plan.scenario) body.inputs.scenario = plan.scenario;
  const answer = await fetch(`/processes/${process}/execution`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = await answer.json();
  if (!answer.ok) { note.textContent = out.detail || String(answer.status); cim.analysisError = note.textContent; return; }
  plan.results = out;
  plan.job = (answer.headers.get("Location") || "").split("/").pop();
  note.replaceChildren();
  if (process === "height-limits") drawBreaches(out, note);
  else if (process === "parcel-indicators") drawIndicators(out, note);
  else drawSunlight(out, note);
  const link = document.createElement("a");
  link.href = `/jobs/${plan.job}/report?lang=${lang}`; link.textContent = t("report"); link.id = "report-link";
  note.append(link);
  cim.analysis = { process, results: out, job: plan.job };
}

function drawBreaches(out, box) {
  plan.marked = new Set(out.breaches.map((b) => b.building));
  plan.sun.removeAll();
  restyle();
  const p = document.createElement("p");
  p.textContent = `${t("breaches")}: ${plan.marked.size || t("none")}`;
  const list = document.createElement("table");
  out.breaches.slice(0, 30).forEach((b) => {
    const tr = list.insertRow();
    tr.insertCell().textContent = b.building;
    const c = tr.insertCell(); c.className = "bad"; c.textContent = `+${b.over_by_m.toFixed(2)} m`;
  });
  box.append(p, list);
}

function drawIndicators(out, box) {
  const table = document.createElement("table");
  const head = table.insertRow();
  [t("parcel"), t("far"), `${t("density")} %`, `${t("maxHeight")} m`].forEach((h) => {
    const th = document.createElement("th"); th.textContent = h; head.append(th);
  });
  out.parcels.forEach((p) => {
    const tr = table.insertRow();
    tr.insertCell().textContent = p.code || p.parcel;
    [[p.far, p.limits.far, "far", 2], [p.density_percent, p.limits.density_percent, "density", 1],
     [p.max_height_m, p.limits.height_m, "height", 1]].forEach(([v, limit, key, digits]) => {
      const c = tr.insertCell();
      c.textContent = v === null ? "–" : `${v.toFixed(digits)}${limit !== null ? ` / ${limit}` : ""}`;
      if (p.checks[key] === "exceeds") c.className = "bad";
    });
  });
  box.append(table);
}

function drawSunlight(out, box) {
  plan.sun.removeAll();
  plan.marked = new Set(); restyle();
  const need = out.rule.min_hours;
  out.points.forEach((p) => {
    const f = Math.min(1, Math.max(0, (p.hours - need) / Math.max(need, 1)));
    const colour = p.passes ? Cesium.Color.fromCssColorString("#1a9850").withAlpha(0.5 + 0.5 * f) : RED;
    plan.sun.add({ position: Cesium.Cartesian3.fromDegrees(p.lon, p.lat, p.height), color: colour,
                   pixelSize: 7, outlineColor: Cesium.Color.BLACK, outlineWidth: 1 });
  });
  const s = out.summary;
  const p = document.createElement("p");
  p.textContent = `${out.date} ${out.window[0]}–${out.window[1]} · ${t("points")} ${s.points}: ${s.passing} ${t("passing")}, ${s.failing} ${t("failing")}`;
  const list = document.createElement("table"); list.id = "failing-windows";
  out.points.filter((q) => !q.passes).slice(0, 40).forEach((q) => {
    const tr = list.insertRow();
    tr.insertCell().textContent = `${q.facade_azimuth !== undefined ? `${Math.round(q.facade_azimuth)}° ` : ""}${q.floor ? `F${q.floor}` : ""} #${q.index ?? q.point}`;
    const c = tr.insertCell(); c.className = "bad"; c.textContent = `${q.hours.toFixed(2)} h`;
  });
  box.append(p, list);
}

// --- measuring: clicks on the model (its surface, else the ellipsoid)
function pickPoint(position) {
  // on an object: the depth drawn there; elsewhere the ground: the ellipsoid itself when the
  // globe has no terrain (its drawn tiles are flat facets of it, tens of metres off until
  // refined, and its depth too coarse to measure on), else the terrain's surface
  const onObject = viewer.scene.pick(position);
  let p = onObject && viewer.scene.pickPositionSupported ? viewer.scene.pickPosition(position) : undefined;
  if (Cesium.defined(p)) return p;
  if (viewer.terrainProvider instanceof Cesium.EllipsoidTerrainProvider) return viewer.camera.pickEllipsoid(position);
  return viewer.scene.globe.pick(viewer.camera.getPickRay(position), viewer.scene);
}

function area(points) {  // in the local horizontal plane of the first point
  const frame = Cesium.Matrix4.inverseTransformation(Cesium.Transforms.eastNorthUpToFixedFrame(points[0]), new Cesium.Matrix4());
  const xy = points.map((p) => Cesium.Matrix4.multiplyByPoint(frame, p, new Cesium.Cartesian3()));
  let sum = 0;
  xy.forEach((a, i) => { const b = xy[(i + 1) % xy.length]; sum += a.x * b.y - b.x * a.y; });
  return Math.abs(sum) / 2;
}

function measureResult() {
  const m = plan.measure, pts = m.points;
  if (m.mode === "distance" && pts.length >= 2) {
    let d = 0; for (let i = 1; i < pts.length; i += 1) d += Cesium.Cartesian3.distance(pts[i - 1], pts[i]);
    return { value: d, text: `${d.toFixed(2)} m` };
  }
  if (m.mode === "height" && pts.length >= 2) {
    const [a, b] = pts.slice(-2).map((p) => Cesium.Cartographic.fromCartesian(p).height);
    return { value: Math.abs(b - a), text: `${Math.abs(b - a).toFixed(2)} m` };
  }
  if (m.mode === "area" && pts.length >= 3) {
    const v = area(pts); return { value: v, text: `${v.toFixed(1)} m²` };
  }
  return null;
}

function drawMeasure() {
  const m = plan.measure;
  m.entities.forEach((e) => viewer.entities.remove(e)); m.entities = [];
  m.points.forEach((p) => m.entities.push(viewer.entities.add({ position: p, point: { pixelSize: 7, color: Cesium.Color.ORANGE } })));
  if (m.points.length >= 2) {
    const line = m.mode === "area" ? [...m.points, m.points[0]] : m.points;
    m.entities.push(viewer.entities.add({ polyline: { positions: line, width: 2, material: Cesium.Color.ORANGE } }));
  }
  m.result = measureResult();
  $("measure-result").textContent = m.result ? m.result.text : t("clickPoints");
}

function startMeasure(mode) {
  plan.measure.mode = mode; plan.measure.points = []; drawMeasure();
}

cim.onClick = (click) => {
  if (plan.measure.mode) {
    const p = pickPoint(click.position);
    if (Cesium.defined(p)) { plan.measure.points.push(p); drawMeasure(); }
    return true;
  }
  const picked = viewer.scene.pick(click.position);
  if (picked && picked.id instanceof Cesium.Entity && picked.id.parcel) { showParcel(picked.id); return true; }
  return false;
};

// --- horizontal clipping plane, at a height above the ground of the city's centre
// (a tileset's planes are in its own frame, `clippingPlanesOriginMatrix`: each gets its own,
// kept once made and turned off rather than removed, which Cesium does not take well)
function clipTileset(tileset) {
  if (!tileset || !cim.tileset) return;
  const on = !!plan.clip;
  if (!on && !tileset.clippingPlanes) return;
  const centre = Cesium.Cartographic.fromCartesian(cim.tileset.boundingSphere.center);
  const ground = Cesium.Cartesian3.fromRadians(centre.longitude, centre.latitude, on ? plan.clip.ground : 0);
  const toWorld = Cesium.Transforms.eastNorthUpToFixedFrame(ground);
  const fromOrigin = Cesium.Matrix4.inverseTransformation(tileset.clippingPlanesOriginMatrix, new Cesium.Matrix4());
  const matrix = Cesium.Matrix4.multiply(fromOrigin, toWorld, new Cesium.Matrix4());
  const height = on ? plan.clip.height : 0;
  if (!tileset.clippingPlanes) {
    tileset.clippingPlanes = new Cesium.ClippingPlaneCollection({
      modelMatrix: matrix, planes: [new Cesium.ClippingPlane(new Cesium.Cartesian3(0, 0, -1), height)],
      edgeWidth: 1.0, edgeColor: Cesium.Color.ORANGE,
    });
  } else {
    tileset.clippingPlanes.modelMatrix = matrix;
    tileset.clippingPlanes.get(0).distance = height;
  }
  tileset.clippingPlanes.enabled = on;
}

function applyClip() {
  const on = $("clip-on").checked;
  const height = Number($("clip-height").value);
  $("clip-value").textContent = on ? `${height} m` : "";
  // heights above the ground: the lowest point of the city's objects
  plan.clip = on ? { height, ground: (plan.doc && plan.doc.ground) || 0 } : null;
  [cim.tileset, plan.scheme, plan.left].forEach(clipTileset);
  saveView();
}

// --- shadows of the sun on a day (大寒日 by default) at a time (Beijing time)
function applyShadows() {
  const on = $("shadows-on").checked;
  viewer.shadows = on;
  viewer.terrainShadows = on ? Cesium.ShadowMode.RECEIVE_ONLY : Cesium.ShadowMode.DISABLED;
  [cim.tileset, plan.scheme, plan.left].forEach((ts) => { if (ts) ts.shadows = on ? Cesium.ShadowMode.ENABLED : Cesium.ShadowMode.DISABLED; });
  const day = $("shadow-date").value, time = $("shadow-time").value || "10:00";
  if (day) {
    const utc = Date.parse(`${day}T${time}:00Z`) - BEIJING_MS;
    viewer.clock.currentTime = Cesium.JulianDate.fromDate(new Date(utc));
    viewer.clock.shouldAnimate = false;
  }
  if (on) viewer.shadowMap.softShadows = true;
  saveView();
}

// --- the view as a link
function viewState() {
  const c = Cesium.Cartographic.fromCartesian(viewer.camera.positionWC);
  const state = { city: cim.city };
  state.cam = [Cesium.Math.toDegrees(c.longitude).toFixed(7), Cesium.Math.toDegrees(c.latitude).toFixed(7),
    c.height.toFixed(1), Cesium.Math.toDegrees(viewer.camera.heading).toFixed(2),
    Cesium.Math.toDegrees(viewer.camera.pitch).toFixed(2)].join(",");
  if (plan.scenario) state.scenario = plan.scenario;
  if ($("compare-on").checked) state.compare = "1";
  if ($("parcels-on").checked) state.parcels = "1";
  if (plan.clip) state.clip = String(plan.clip.height);
  if ($("shadows-on").checked) state.shadows = `${$("shadow-date").value}T${$("shadow-time").value}`;
  return state;
}

function saveView() {
  if (!cim.city) return;
  const url = new URL(window.location);
  url.search = new URLSearchParams(viewState()).toString();
  history.replaceState(null, "", url);
}

cim.shareLink = () => { saveView(); return window.location.href; };
// for tests and scripts: the height (ellipsoidal) of what is drawn at a screen point
cim.pickHeight = (x, y) => {
  const p = pickPoint(new Cesium.Cartesian2(x, y));
  return Cesium.defined(p) ? Cesium.Cartographic.fromCartesian(p).height : null;
};

async function restoreView(params, tileset) {
  if (params.get("parcels") === "1") { $("parcels-on").checked = true; await showParcels(true); }
  if (params.get("compare") === "1") $("compare-on").checked = true;
  if (params.get("scenario")) { $("scenario").value = params.get("scenario"); await showScenario(params.get("scenario")); }
  if (params.get("clip")) { $("clip-on").checked = true; $("clip-height").value = params.get("clip"); applyClip(); }
  if (params.get("shadows")) {
    const [day, time] = params.get("shadows").split("T");
    $("shadows-on").checked = true; $("shadow-date").value = day; $("shadow-time").value = time; applyShadows();
  }
  const cam = (params.get("cam") || "").split(",").map(Number);
  if (cam.length === 5 && cam.every(Number.isFinite)) {
    viewer.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(cam[0], cam[1], cam[2]),
      orientation: { heading: Cesium.Math.toRadians(cam[3]), pitch: Cesium.Math.toRadians(cam[4]), roll: 0 } });
  }
  cim.restored = true;
  return tileset;
}

cim.onCity = (code, tileset) => {
  const params = new URLSearchParams(window.location.search);
  const shared = !cim.restored && params.get("city") === code && params.has("cam");
  plan.hidden = new Set(); plan.marked = new Set(); plan.sun.removeAll();
  if (plan.scheme) { viewer.scene.primitives.remove(plan.scheme); plan.scheme = null; }
  plan.scenario = ""; showParcels(false);
  cim.planningReady = loadPlanning(code).then(() => (shared ? restoreView(params, tileset) : null))
    .then(() => { cim.planningLoaded = true; });
  if (!shared) cim.restored = true;
  return shared;
};

// --- controls
$("scenario").addEventListener("change", (e) => showScenario(e.target.value));
$("compare-on").addEventListener("change", (e) => { sideBySide(e.target.checked && !!plan.scheme).then(saveView); });
$("parcels-on").addEventListener("change", (e) => { showParcels(e.target.checked).then(saveView); });
$("measure-distance").addEventListener("click", () => startMeasure("distance"));
$("measure-height").addEventListener("click", () => startMeasure("height"));
$("measure-area").addEventListener("click", () => startMeasure("area"));
$("measure-clear").addEventListener("click", () => { startMeasure(null); $("measure-result").textContent = ""; });
$("clip-on").addEventListener("change", applyClip);
$("clip-height").addEventListener("input", applyClip);
$("shadows-on").addEventListener("change", applyShadows);
$("shadow-date").addEventListener("change", applyShadows);
$("shadow-time").addEventListener("change", applyShadows);
$("share").addEventListener("click", async () => {
  const link = cim.shareLink();
  try { await navigator.clipboard.writeText(link); } catch (err) { /* no clipboard: the address bar has it */ }
  $("share").textContent = t("copied");
  setTimeout(() => { $("share").textContent = t("share"); }, 1500);
});
viewer.camera.moveEnd.addEventListener(() => { if (cim.restored) saveView(); });
translate();
