// CIM 3D viewer: a city's 3D Tiles on a CesiumJS globe, served with no internet access.
// State for tests and scripts is kept in window.cim.
"use strict";

const TEXT = {
  zh: { title: "城市信息模型", city: "城市", colour: "着色", bySurface: "按表面", byType: "按类型",
        byHeight: "按高度", types: "对象类型", loading: "加载中…", ready: "已加载", object: "对象",
        inApi: "在要素 API 中查看", none: "没有城市：请先导入数据", id: "编号", type: "类型",
        dataset: "数据集", height: "高度", failed: "加载失败", grading: "星级评价",
        bySensor: "按传感器最新值", sensors: "传感器", showSensors: "显示传感器", sensor: "传感器",
        connecting: "实时数据连接中…", live: "实时数据已连接", offline: "无实时数据（没有 MQTT 服务）",
        name: "名称", thing: "物联网对象", lastDay: "最近 24 小时", noChart: "无法绘制图表",
        noValues: "24 小时内没有数值", onObject: "所在对象" },
  en: { title: "City Information Model", city: "City", colour: "Colour", bySurface: "By surface",
        byType: "By type", byHeight: "By height", types: "Object types", loading: "Loading…",
        ready: "Loaded", object: "Object", inApi: "Open in the Features API",
        none: "No city yet: ingest some data first", id: "ID", type: "Type",
        dataset: "Dataset", height: "Height", failed: "Failed to load",
        grading: "Star rating", bySensor: "By a sensor's latest value", sensors: "Sensors",
        showSensors: "Show sensors", sensor: "Sensor", connecting: "Connecting to live data…",
        live: "Live data connected", offline: "No live data (no MQTT broker)", name: "Name",
        thing: "Thing", lastDay: "Last 24 hours", noChart: "Cannot draw the chart",
        noValues: "No numbers in the last 24 hours", onObject: "On object" },
};
const TYPE_COLOURS = {
  Building: "#e2ddd3", BuildingPart: "#e2ddd3", Road: "#78787d", WaterBody: "#4a90c2",
  PlantCover: "#60a050", SolitaryVegetationObject: "#468c3c", LandUse: "#c9b98f",
  CityFurniture: "#f0c828", GenericCityObject: "#e678c8", Bridge: "#a0a0a0",
};
const OWN = new Set(["id", "cim_id", "type", "dataset", "height"]);
const RAMP = ["#2c7bb6", "#00a6ca", "#f9d057", "#f29e2e", "#d7191c"];  // low to high
const DAY_MS = 24 * 3600 * 1000;

const cim = (window.cim = { ready: false, selected: null, city: null, tileset: null, types: {} });
let lang = localStorage.getItem("cim.lang") || "zh";

function t(key) { return (TEXT[lang] || TEXT.zh)[key] || key; }

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = lang === "zh" ? "EN" : "中文";
  document.getElementById("status").textContent = cim.ready ? t("ready") : t("loading");
}

const viewer = new Cesium.Viewer("globe", {
  baseLayer: Cesium.ImageryLayer.fromProviderAsync(
    Cesium.TileMapServiceImageryProvider.fromUrl(Cesium.buildModuleUrl("Assets/Textures/NaturalEarthII"))),
  baseLayerPicker: false, geocoder: false, timeline: false, animation: false,
  sceneModePicker: false, navigationHelpButton: false, fullscreenButton: false,
  selectionIndicator: false, infoBox: false,
});
viewer.scene.globe.depthTestAgainstTerrain = false;
cim.viewer = viewer;

function styleFor(mode) {
  const shown = Object.entries(cim.types).filter(([, on]) => on).map(([k]) => k);
  const show = shown.length === Object.keys(cim.types).length ? "true"
    : shown.length === 0 ? "false" : shown.map((k) => `\${type} === ${JSON.stringify(k)}`).join(" || ");
  if (mode === "type") {
    const conditions = Object.entries(TYPE_COLOURS).map(([k, c]) => [`\${type} === ${JSON.stringify(k)}`, `color("${c}")`]);
    conditions.push(["true", "color('#d2cdc3')"]);
    return new Cesium.Cesium3DTileStyle({ show, color: { conditions } });
  }
  if (mode === "sensor" && cim.colour) return sensorStyle(show);
  if (mode === "height") {
    return new Cesium.Cesium3DTileStyle({ show, color: { conditions: [
      ["${height} >= 100", "color('#b2182b')"], ["${height} >= 50", "color('#ef8a62')"],
      ["${height} >= 24", "color('#fddbc7')"], ["${height} >= 10", "color('#d1e5f0')"],
      ["true", "color('#67a9cf')"]] } });
  }
  return new Cesium.Cesium3DTileStyle({ show });
}

function restyle() {
  if (!cim.tileset) return;
  const mode = document.querySelector("input[name=colour]:checked").value;
  cim.tileset.style = styleFor(mode);
  // the planning tools' marks on it: objects a scheme replaces hidden, analysis results marked
  if (cim.decorate) cim.tileset.style = cim.decorate(cim.tileset.style);
  // a sensor's colour mostly replaces the surfaces' own (multiplied with a dark roof it would not
  // show); objects without a value stay white, which MIX leaves as they are
  const bySensor = mode === "sensor" && cim.colour;
  cim.tileset.colorBlendMode = bySensor
    ? Cesium.Cesium3DTileColorBlendMode.MIX : Cesium.Cesium3DTileColorBlendMode.HIGHLIGHT;
  cim.tileset.colorBlendAmount = bySensor ? 0.85 : 0.5;
  showLegend();
}

function showTypes(types) {
  const box = document.getElementById("types");
  box.querySelectorAll("label").forEach((el) => el.remove());
  cim.types = {};
  types.forEach((type) => {
    cim.types[type] = true;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.checked = true; input.value = type;
    input.addEventListener("change", () => { cim.types[type] = input.checked; restyle(); });
    label.append(input, " ", type);
    box.append(label);
  });
}

function detail(key, value) {
  const dt = document.createElement("dt"); dt.textContent = key;
  const dd = document.createElement("dd");
  dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
  document.getElementById("details").append(dt, dd);
}

function openPanel(kind) {
  document.getElementById("details").replaceChildren();
  const heading = document.querySelector("#panel h2");
  heading.dataset.i18n = kind; heading.textContent = t(kind);
  document.getElementById("panel").hidden = false;
}

function showFeature(feature) {
  openPanel("object");
  const id = feature.getProperty("id");
  detail(t("id"), id);
  detail(t("type"), feature.getProperty("type"));
  const height = feature.getProperty("height");
  if (typeof height === "number") detail(t("height"), `${height.toFixed(1)} m`);
  feature.getPropertyIds().filter((k) => !OWN.has(k)).sort().forEach((k) => {
    const v = feature.getProperty(k);
    if (v !== undefined && v !== null && v !== "") detail(k, v);
  });
  const link = document.getElementById("feature-link");
  link.href = `/collections/${encodeURIComponent(cim.city)}/items/${encodeURIComponent(id)}`;
  cim.selected = id;
  showDatastreams(sensors.byObject.get(String(id)) || []);  // the Things on or in it
  if (cim.onFeature) cim.onFeature(String(id));  // the planning analyses of a building
  // the dataset, and anything else the tile leaves out, comes from the Features API
  fetch(link.href, { headers: { Accept: "application/geo+json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((item) => { if (item && cim.selected === id) detail(t("dataset"), item.properties.dataset); })
    .catch(() => {});
}

let highlighted = null;
viewer.screenSpaceEventHandler.setInputAction((click) => {
  if (cim.onClick && cim.onClick(click)) return;  // a planning tool's click (measuring, a parcel)
  const picked = viewer.scene.pick(click.position);
  if (picked && picked.id && picked.id.sensor !== undefined) { showSensor(picked.id.sensor); return; }
  if (!(picked instanceof Cesium.Cesium3DTileFeature)) return;
  if (highlighted) highlighted.feature.color = highlighted.color;
  highlighted = { feature: picked, color: Cesium.Color.clone(picked.color) };
  picked.color = Cesium.Color.YELLOW;
  showFeature(picked);
}, Cesium.ScreenSpaceEventType.LEFT_CLICK);

// --- The live twin: each Thing at its Location with its Datastreams' latest values, kept live by
// the service's Server-Sent Events (/twin/events); a click charts a Datastream's last 24 hours
// with ECharts (loaded on first use); buildings coloured by a Datastream's latest value.
const sensors = (cim.sensors = {
  things: new Map(), datastreams: new Map(), byObject: new Map(), drawn: new Map(),
  points: viewer.scene.primitives.add(new Cesium.PointPrimitiveCollection()),
  labels: viewer.scene.primitives.add(new Cesium.LabelCollection()),
});
sensors.label = (thing) => { const d = sensors.drawn.get(thing); return d ? d.label.text : null; };
cim.charts = new Map();
cim.live = false;
cim.colour = null;

function formatValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  if (v === null || v === undefined) return "–";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function valueText(ds) {
  if (ds.result === null || ds.result === undefined) return "–";
  return ds.unit ? `${formatValue(ds.result)} ${ds.unit}` : formatValue(ds.result);
}

function labelText(thing) {
  const many = thing.datastreams.length > 1;
  const lines = thing.datastreams.slice(0, 3).map((ds) => (many ? `${ds.name}: ${valueText(ds)}` : valueText(ds)));
  return lines.join("\n") || thing.name;
}

const startOf = (time) => Date.parse(String(time).split("/")[0]);  // an interval's start

async function loadSensors(code) {
  let body;
  try {
    const answer = await fetch(`/twin/${encodeURIComponent(code)}/sensors`);
    if (!answer.ok) return;  // no twin here, or its reads are private
    body = await answer.json();
  } catch (err) { return; }
  if (cim.city !== code) return;
  sensors.points.removeAll(); sensors.labels.removeAll();
  [sensors.things, sensors.datastreams, sensors.byObject, sensors.drawn].forEach((m) => m.clear());
  const colour = Cesium.Color.fromCssColorString("#e8543a");
  body.sensors.forEach((thing) => {
    sensors.things.set(thing.thing, thing);
    thing.datastreams.forEach((ds) => sensors.datastreams.set(ds.id, { thing, ds }));
    if (thing.object !== null) {
      if (!sensors.byObject.has(thing.object)) sensors.byObject.set(thing.object, []);
      sensors.byObject.get(thing.object).push(thing);
    }
    // on top of everything: a sensor on a roof is not hidden by the roof's own triangles
    const position = Cesium.Cartesian3.fromDegrees(thing.lon, thing.lat, thing.height || 0);
    const id = { sensor: thing.thing };
    const point = sensors.points.add({ position, id, color: colour, pixelSize: 11, outlineColor: Cesium.Color.WHITE,
      outlineWidth: 2, disableDepthTestDistance: Number.POSITIVE_INFINITY });
    const label = sensors.labels.add({ position, id, text: labelText(thing), font: "13px sans-serif",
      style: Cesium.LabelStyle.FILL_AND_OUTLINE, fillColor: Cesium.Color.WHITE, outlineColor: Cesium.Color.BLACK,
      outlineWidth: 3, verticalOrigin: Cesium.VerticalOrigin.BOTTOM, pixelOffset: new Cesium.Cartesian2(0, -10),
      disableDepthTestDistance: Number.POSITIVE_INFINITY,
      distanceDisplayCondition: new Cesium.DistanceDisplayCondition(0, 6000) });
    sensors.drawn.set(thing.thing, { point, label });
  });
  showColourChoices();
  if (document.querySelector("input[name=colour]:checked").value === "sensor" && !cim.colour) {
    colourBy(document.getElementById("colour-sensor").value);
  }
}

// values as the live feed sends them: [{datastream, time, result}, ...]
function applyValues(values) {
  let recolour = false;
  values.forEach((v) => {
    const known = sensors.datastreams.get(v.datastream);
    if (!known) return;
    const { thing, ds } = known;
    const chart = cim.charts.get(ds.id);
    if (chart) chart.add(v.time, v.result);
    if (ds.time && startOf(v.time) < startOf(ds.time)) return;  // a late reading: not the latest
    ds.result = v.result; ds.time = v.time;
    const drawn = sensors.drawn.get(thing.thing);
    if (drawn) drawn.label.text = labelText(thing);
    document.querySelectorAll(`#charts [data-datastream="${ds.id}"] .latest`).forEach((el) => {
      el.textContent = valueText(ds);
    });
    const object = cim.colour && cim.colour.datastreams.get(String(ds.id));
    if (object !== undefined && object !== null && typeof v.result === "number") {
      cim.colour.values.set(object, v.result); recolour = true;
    }
  });
  if (recolour) { colourRange(); showLegend(); if (cim.tileset) cim.tileset.makeStyleDirty(); }
}

function liveText(reason) {
  const el = document.getElementById("live");
  el.dataset.i18n = cim.live ? "live" : "offline";
  el.textContent = t(el.dataset.i18n);
  el.title = reason || "";
  el.className = cim.live ? "on" : "off";
}

async function catchUp(code) {
  const answer = await fetch(`/twin/${encodeURIComponent(code)}/latest`);
  if (!answer.ok || code !== cim.city) return;
  const body = await answer.json();  // rows of [datastream, time, result]
  applyValues(body.values.map(([datastream, time, result]) => ({ datastream, time, result })));
}

function listen() {
  const source = new EventSource("/twin/events");
  let opened = false;
  source.addEventListener("status", (e) => {
    const status = JSON.parse(e.data);
    cim.live = status.live === true;
    liveText(status.reason);
    // after a reconnection: what came while the stream was down is in the latest values
    if (opened && cim.city) catchUp(cim.city);
    opened = true;
  });
  source.onmessage = (e) => applyValues(JSON.parse(e.data));
  source.onerror = () => { cim.live = false; liveText(); };
  cim.events = source;
}

let echartsLoading = null;
function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  echartsLoading = echartsLoading || new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/echarts/echarts.min.js";
    script.onload = () => resolve(window.echarts);
    script.onerror = () => { echartsLoading = null; reject(new Error("ECharts is not installed (npm install)")); };
    document.head.append(script);
  });
  return echartsLoading;
}

function clearCharts() {
  cim.charts.forEach((chart) => chart.dispose());
  cim.charts.clear();
  document.getElementById("charts").replaceChildren();
}

function showDatastreams(things) {
  clearCharts();
  const box = document.getElementById("charts");
  things.forEach((thing) => thing.datastreams.forEach((ds) => {
    const item = document.createElement("div");
    item.className = "datastream"; item.dataset.datastream = ds.id;
    const head = document.createElement("h3");
    head.textContent = ds.property && ds.property !== ds.name ? `${ds.name} · ${ds.property}` : ds.name;
    const latest = document.createElement("p");
    latest.className = "latest"; latest.textContent = valueText(ds);
    const caption = document.createElement("p");
    caption.className = "caption"; caption.dataset.i18n = "lastDay"; caption.textContent = t("lastDay");
    const plot = document.createElement("div");
    plot.className = "chart";
    item.append(head, latest, caption, plot);
    box.append(item);
    chartDay(ds, plot);
  }));
}

// the latest 10,000 Observations of the last 24 hours, as SensorThings' compact data array
async function chartDay(ds, plot) {
  const since = new Date(Date.now() - DAY_MS).toISOString();
  const query = new URLSearchParams({ $filter: `phenomenonTime ge ${since}`, $orderby: "phenomenonTime desc",
    $top: "10000", $resultFormat: "dataArray", $select: "phenomenonTime,result" });
  try {
    const [lib, body] = await Promise.all([loadECharts(),
      fetch(`/v1.1/Datastreams(${ds.id})/Observations?${query}`)
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))]);
    if (!plot.isConnected) return;
    const block = (body.value || [])[0];
    const rows = block ? block.dataArray : [];
    const at = block ? block.components.indexOf("phenomenonTime") : 0;
    const res = block ? block.components.indexOf("result") : 1;
    const points = rows.map((r) => [startOf(r[at]), r[res]]).filter((p) => typeof p[1] === "number").reverse();
    const chart = lib.init(plot, null, { renderer: "canvas" });
    chart.setOption({
      animation: false, grid: { left: 46, right: 14, top: 28, bottom: 26 },
      tooltip: { trigger: "axis", valueFormatter: (v) => (ds.unit ? `${formatValue(v)} ${ds.unit}` : formatValue(v)) },
      xAxis: { type: "time" },
      yAxis: { type: "value", scale: true, name: ds.unit || "" },
      series: [{ type: "line", name: ds.name, data: points, showSymbol: points.length < 2,
                 lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.08 } }],
    });
    cim.charts.set(ds.id, {
      add(time, value) {
        if (typeof value !== "number") return;
        const when = startOf(time);
        let i = points.length;
        while (i > 0 && points[i - 1][0] > when) i -= 1;  // readings may come late
        points.splice(i, 0, [when, value]);
        while (points.length && points[0][0] < Date.now() - DAY_MS) points.shift();
        chart.setOption({ series: [{ data: points, showSymbol: points.length < 2 }] });
      },
      points: () => points.length,
      last: () => (points.length ? points[points.length - 1][1] : null),
      dispose: () => chart.dispose(),
    });
    if (!points.length) plot.dataset.empty = t("noValues");
  } catch (err) {
    plot.textContent = `${t("noChart")}: ${err.message}`;
  }
}

function showSensor(id) {
  const thing = sensors.things.get(id);
  if (!thing) return;
  if (highlighted) { highlighted.feature.color = highlighted.color; highlighted = null; }
  openPanel("sensor");
  detail(t("name"), thing.name);
  detail(t("thing"), thing.thing);
  if (thing.object !== null) detail(t("onObject"), thing.object);
  const link = document.getElementById("feature-link");
  link.href = thing.object !== null
    ? `/collections/${encodeURIComponent(cim.city)}/items/${encodeURIComponent(thing.object)}`
    : `/v1.1/Things(${thing.thing})`;
  cim.selected = thing.object;
  cim.selectedSensor = id;
  showDatastreams([thing]);
}

// --- colour by a sensor: the kinds of numbers Things on city objects have, by property and name
function showColourChoices() {
  const select = document.getElementById("colour-sensor");
  const names = new Set();
  sensors.things.forEach((thing) => {
    if (thing.object === null) return;
    thing.datastreams.filter((ds) => typeof ds.result === "number").forEach((ds) => {
      if (ds.property) names.add(ds.property);
      names.add(ds.name);
    });
  });
  const chosen = select.value;
  select.replaceChildren(...[...names].sort().map((name) => {
    const option = document.createElement("option"); option.value = option.textContent = name; return option;
  }));
  if (names.has(chosen)) select.value = chosen;
  select.disabled = names.size === 0;
}

async function colourBy(name) {
  if (!name || !cim.city) { cim.colour = null; showLegend(); restyle(); return; }
  const answer = await fetch(`/twin/${encodeURIComponent(cim.city)}/colour?datastream=${encodeURIComponent(name)}`);
  if (!answer.ok) return;
  const body = await answer.json();
  cim.colour = { name, unit: body.unit, values: new Map(Object.entries(body.objects)),
                 datastreams: new Map(Object.entries(body.datastreams)), low: 0, high: 0 };
  colourRange(); showLegend(); restyle();
}

function colourRange() {
  const values = [...cim.colour.values.values()];
  cim.colour.low = Math.min(...values); cim.colour.high = Math.max(...values);
}

function showLegend() {
  const legend = document.getElementById("colour-legend");
  const on = document.querySelector("input[name=colour]:checked").value === "sensor";
  legend.hidden = !(on && cim.colour && cim.colour.values.size);
  if (legend.hidden) return;
  const { low, high, unit } = cim.colour;
  const bar = document.createElement("span");
  bar.className = "ramp"; bar.style.background = `linear-gradient(to right, ${RAMP.join(", ")})`;
  const range = document.createElement("span");
  range.textContent = `${formatValue(low)} – ${formatValue(high)}${unit ? ` ${unit}` : ""}`;
  legend.replaceChildren(bar, range);
}

// a style that looks each building's value up by its id (the tiles' `id`: its Features API id)
function sensorStyle(show) {
  const style = new Cesium.Cesium3DTileStyle({ show });
  const ramp = RAMP.map((c) => Cesium.Color.fromCssColorString(c));
  const none = Cesium.Color.WHITE;
  const colourOf = (feature, result) => {
    const v = cim.colour ? cim.colour.values.get(String(feature.getProperty("id"))) : undefined;
    if (typeof v !== "number") return Cesium.Color.clone(none, result);
    const { low, high } = cim.colour;
    const f = high > low ? (v - low) / (high - low) : 0.5;
    return Cesium.Color.clone(ramp[Math.min(ramp.length - 1, Math.floor(f * ramp.length))], result);
  };
  style.color = { evaluate: colourOf, evaluateColor: colourOf };
  return style;
}

async function loadCity(code) {
  cim.ready = false;
  translate();
  if (cim.tileset) { viewer.scene.primitives.remove(cim.tileset); cim.tileset = null; }
  cim.city = code;
  cim.colour = null;
  loadSensors(code);
  const url = new URL(window.location);
  url.searchParams.set("city", code);
  history.replaceState(null, "", url);
  try {
    const queryables = await (await fetch(`/collections/${encodeURIComponent(code)}/types`)).json();
    showTypes(queryables.types || []);
    const tileset = await Cesium.Cesium3DTileset.fromUrl(
      `/collections/${encodeURIComponent(code)}/3dtiles/tileset.json`, { maximumScreenSpaceError: 8 });
    // point clouds: points sized by the spacing of their level, shaded by depth (eye-dome)
    tileset.pointCloudShading.attenuation = true;
    tileset.pointCloudShading.maximumAttenuation = 4;
    cim.tileset = tileset;
    viewer.scene.primitives.add(tileset);
    restyle();
    tileset.allTilesLoaded.addEventListener(() => {
      cim.ready = true;
      document.getElementById("status").textContent = t("ready");
    });
    if (!(cim.onCity && cim.onCity(code, tileset))) {  // a shared view puts the camera itself
      await viewer.zoomTo(tileset, new Cesium.HeadingPitchRange(0, -0.6, 0));
    }
  } catch (err) {
    document.getElementById("status").textContent = `${t("failed")}: ${err}`;
    cim.error = String(err);
  }
}

// For tests and scripts: look straight down at a point, and where a point is on screen.
cim.lookDown = (lon, lat, height, range) => {
  viewer.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(lon, lat, height + range),
                          orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 } });
};
cim.screenPosition = (lon, lat, height) => {
  const p = Cesium.SceneTransforms.worldToWindowCoordinates(
    viewer.scene, Cesium.Cartesian3.fromDegrees(lon, lat, height));
  return p ? [p.x, p.y] : null;
};

async function start() {
  translate();
  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("cim.lang", lang);
    translate();
  });
  document.getElementById("close").addEventListener("click", () => {
    document.getElementById("panel").hidden = true;
    clearCharts();
  });
  document.querySelectorAll("input[name=colour]").forEach((el) => el.addEventListener("change", () => {
    if (el.value === "sensor" && el.checked) colourBy(document.getElementById("colour-sensor").value);
    else restyle();
  }));
  document.getElementById("colour-sensor").addEventListener("change", (e) => {
    document.querySelector("input[name=colour][value=sensor]").checked = true;
    colourBy(e.target.value);
  });
  document.getElementById("sensors-on").addEventListener("change", (e) => {
    sensors.points.show = sensors.labels.show = e.target.checked;
  });
  listen();
  const body = await (await fetch("/collections", { headers: { Accept: "application/json" } })).json();
  // cities are the collections with 3D content (a city's planning parcels are a collection too)
  body.collections = body.collections.filter((c) => c.content);
  const select = document.getElementById("city");
  body.collections.forEach((c) => {
    const option = document.createElement("option");
    option.value = c.id; option.textContent = c.title === c.id ? c.id : `${c.title} (${c.id})`;
    select.append(option);
  });
  select.addEventListener("change", () => loadCity(select.value));
  if (!body.collections.length) { document.getElementById("status").textContent = t("none"); return; }
  const wanted = new URLSearchParams(window.location.search).get("city");
  select.value = body.collections.some((c) => c.id === wanted) ? wanted : body.collections[0].id;
  await loadCity(select.value);
}

start();
