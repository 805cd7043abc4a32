// The SAGE live view page: mounts Foxglove Studio's core (the UMD bundle of
// @foxglove/studio-base, served under assets/) with one data source, the Foxglove WebSocket,
// and one layout, the SAGE layout (layout.json). Open it as
//   /?ds=foxglove-websocket&ds.url=ws://127.0.0.1:8765&layoutId=sage
// Plain script, no build step: React and ReactDOM are the UMD builds of their npm packages.
"use strict";

const SUBPROTOCOL_LEGACY = "foxglove.websocket.v1";
const SUBPROTOCOL_SDK = "foxglove.sdk.v1";
const LAYOUT_ID = "sage";

// window.sageLiveView tells a test driver where the page is (loading, rendered or error), whether
// the WebSocket is open and how many messages it has brought.
const status = { state: "loading", error: undefined, connected: false, messages: 0 };
window.sageLiveView = status;

function fail(message) {
  status.state = "error";
  status.error = String(message);
  const box = document.createElement("div");
  box.id = "sage-error";
  box.textContent = `SAGE live view: ${message}`;
  document.body.prepend(box);
}

// Studio 1.48 asks for the subprotocol "foxglove.websocket.v1"; foxglove-sdk servers accept
// only "foxglove.sdk.v1", the same protocol under its new name (Lichtblick offers both since
// its fix for foxglove_bridge 3). Studio opens its socket in a Web Worker, so the new name is
// added to the worker's "open" request and the server's answer is reported under the old one.
class SubprotocolAliasWorker extends window.Worker {
  postMessage(message, ...rest) {
    const protocols = message?.type === "open" ? message.data?.protocols : undefined;
    if (Array.isArray(protocols) && protocols.includes(SUBPROTOCOL_LEGACY)
        && !protocols.includes(SUBPROTOCOL_SDK)) {
      message = { ...message, data: { ...message.data, protocols: [SUBPROTOCOL_SDK, ...protocols] } };
      this.carriesWebSocket = true;
    }
    return super.postMessage(message, ...rest);
  }

  get onmessage() {
    return super.onmessage;
  }

  set onmessage(handler) {
    super.onmessage = typeof handler !== "function" ? handler : (event) => {
      if (this.carriesWebSocket && event.data?.type === "open") {
        status.connected = true;
        if (event.data.protocol === SUBPROTOCOL_SDK) {
          event.data.protocol = SUBPROTOCOL_LEGACY;
        }
      } else if (this.carriesWebSocket && event.data?.type === "message") {
        status.messages += 1;
      } else if (this.carriesWebSocket && event.data?.type === "close") {
        status.connected = false;
      }
      return handler.call(this, event);
    };
  }
}
window.Worker = SubprotocolAliasWorker;

// App settings kept in memory: nothing persists between page loads, so every load (and every
// test run) starts from the same state.
class MemoryAppConfiguration {
  constructor(values) {
    this.values = new Map(Object.entries(values));
    this.listeners = new Map();
  }
  get(key) {
    return this.values.get(key);
  }
  async set(key, value) {
    this.values.set(key, value);
    for (const listener of this.listeners.get(key) ?? []) {
      listener(value);
    }
  }
  addChangeListener(key, listener) {
    if (!this.listeners.has(key)) {
      this.listeners.set(key, new Set());
    }
    this.listeners.get(key).add(listener);
  }
  removeChangeListener(key, listener) {
    this.listeners.get(key)?.delete(listener);
  }
}

// Layouts kept in memory, each namespace seeded with the SAGE layout (Studio's layout manager
// asks its storage by namespace, and the URL's layoutId selects it).
class MemoryLayoutStorage {
  constructor(seed) {
    this.seed = seed;
    this.namespaces = new Map();
  }
  space(namespace) {
    if (!this.namespaces.has(namespace)) {
      this.namespaces.set(namespace, new Map(this.seed.map((layout) => [layout.id, layout])));
    }
    return this.namespaces.get(namespace);
  }
  async list(namespace) {
    return [...this.space(namespace).values()];
  }
  async get(namespace, id) {
    return this.space(namespace).get(id);
  }
  async put(namespace, layout) {
    this.space(namespace).set(layout.id, layout);
    return layout;
  }
  async delete(namespace, id) {
    this.space(namespace).delete(id);
  }
  async importLayouts() {}
  async migrateUnnamespacedLayouts() {}
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

// Lichtblick's "Image" panel draws a camera image without a calibration; Studio 1.48's panel of
// that name is an early 3D-based one that needs a CameraInfo to draw anything. The layout's
// Image panels are opened as Studio 1.48's 2D image panel (ImageViewPanel) on the same topic.
function withStudioImagePanels(layout) {
  const renamed = JSON.parse(JSON.stringify(layout), (_key, value) =>
    typeof value === "string" && value.startsWith("Image!") ? `ImageViewPanel!${value.slice(6)}` : value);
  renamed.configById = Object.fromEntries(Object.entries(layout.configById ?? {}).map(([id, config]) =>
    id.startsWith("Image!")
      ? [`ImageViewPanel!${id.slice(6)}`, { cameraTopic: config?.imageMode?.imageTopic ?? "" }]
      : [id, renamed.configById[id]]));
  return renamed;
}

async function main() {
  // The bundle's externals are the globals "react" and "react-dom".
  window.react = window.React;
  window["react-dom"] = window.ReactDOM;
  const response = await fetch("layout.json");
  if (!response.ok) {
    throw new Error(`layout.json: HTTP ${response.status}`);
  }
  const data = withStudioImagePanels(await response.json());
  await loadScript("assets/index.js");
  const { App, AppSetting, FoxgloveWebSocketDataSourceFactory, initI18n } = window;
  await initI18n();
  const layout = {
    id: LAYOUT_ID,
    name: "SAGE",
    permission: "CREATOR_WRITE",
    baseline: { data, savedAt: new Date().toISOString() },
    working: undefined,
    syncInfo: undefined,
  };
  const appConfiguration = new MemoryAppConfiguration({
    [AppSetting.COLOR_SCHEME]: "dark",
    [AppSetting.TELEMETRY_ENABLED]: false,
    [AppSetting.CRASH_REPORTING_ENABLED]: false,
    [AppSetting.HIDE_SIGN_IN_PROMPT]: true,
    [AppSetting.SHOW_OPEN_DIALOG_ON_STARTUP]: false,
  });
  window.ReactDOM.render(
    window.React.createElement(App, {
      deepLinks: [window.location.href],
      appConfiguration,
      dataSources: [new FoxgloveWebSocketDataSourceFactory()],
      layoutStorage: new MemoryLayoutStorage([layout]),
      extensionLoaders: [],
      enableGlobalCss: true,
    }),
    document.getElementById("root"),
  );
  status.state = "rendered";
}

main().catch((error) => fail(error?.message ?? error));
