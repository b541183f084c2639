// CIM 3D viewer: a city's 3D Tiles on a CesiumJS globe, served with no internet access.
// State for tests and scripts is kept in window.cim.
"use strict";

const TEXT = {
  zh: { title: "城市信息模型", city: "城市", colour: "着色", bySurface: "按表面", byType: "按类型",
        byHeight: "按高度", types: "对象类型", loading: "加载中…", ready: "已加载", object: "对象",
        inApi: "在要素 API 中查看", none: "没有城市：请先导入数据", id: "编号", type: "类型",
        dataset: "数据集", height: "高度", failed: "加载失败", grading: "星级评价" },
  en: { title: "City Information Model", city: "City", colour: "Colour", bySurface: "By surface",
        byType: "By type", byHeight: "By height", types: "Object types", loading: "Loading…",
        ready: "Loaded", object: "Object", inApi: "Open in the Features API",
        none: "No city yet: ingest some data first", id: "ID", type: "Type",
        dataset: "Dataset", height: "Height", failed: "Failed to load",
        grading: "Star rating" },
};
const TYPE_COLOURS = {
  Building: "#e2ddd3", BuildingPart: "#e2ddd3", Road: "#78787d", WaterBody: "#4a90c2",
  PlantCover: "#60a050", SolitaryVegetationObject: "#468c3c", LandUse: "#c9b98f",
  CityFurniture: "#f0c828", GenericCityObject: "#e678c8", Bridge: "#a0a0a0",
};
const OWN = new Set(["id", "cim_id", "type", "dataset", "height"]);

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

function showFeature(feature) {
  const details = document.getElementById("details");
  details.replaceChildren();
  const add = (key, value) => {
    const dt = document.createElement("dt"); dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    details.append(dt, dd);
  };
  const id = feature.getProperty("id");
  add(t("id"), id);
  add(t("type"), feature.getProperty("type"));
  const height = feature.getProperty("height");
  if (typeof height === "number") add(t("height"), `${height.toFixed(1)} m`);
  feature.getPropertyIds().filter((k) => !OWN.has(k)).sort().forEach((k) => {
    const v = feature.getProperty(k);
    if (v !== undefined && v !== null && v !== "") add(k, v);
  });
  const link = document.getElementById("feature-link");
  link.href = `/collections/${encodeURIComponent(cim.city)}/items/${encodeURIComponent(id)}`;
  document.getElementById("panel").hidden = false;
  cim.selected = id;
  // the dataset, and anything else the tile leaves out, comes from the Features API
  fetch(link.href, { headers: { Accept: "application/geo+json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((item) => { if (item && cim.selected === id) add(t("dataset"), item.properties.dataset); })
    .catch(() => {});
}

let highlighted = null;
viewer.screenSpaceEventHandler.setInputAction((click) => {
  const picked = viewer.scene.pick(click.position);
  if (!(picked instanceof Cesium.Cesium3DTileFeature)) return;
  if (highlighted) highlighted.feature.color = highlighted.color;
  highlighted = { feature: picked, color: Cesium.Color.clone(picked.color) };
  picked.color = Cesium.Color.YELLOW;
  showFeature(picked);
}, Cesium.ScreenSpaceEventType.LEFT_CLICK);

async function loadCity(code) {
  cim.ready = false;
  translate();
  if (cim.tileset) { viewer.scene.primitives.remove(cim.tileset); cim.tileset = null; }
  cim.city = code;
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
    await viewer.zoomTo(tileset, new Cesium.HeadingPitchRange(0, -0.6, 0));
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
  });
  document.querySelectorAll("input[name=colour]").forEach((el) => el.addEventListener("change", restyle));
  const body = await (await fetch("/collections", { headers: { Accept: "application/json" } })).json();
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
