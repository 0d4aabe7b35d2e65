import { html } from "htm/preact";
import { render, type VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { getToken, onUnauthorized, signOut } from "./api.ts";
import { live, useLive } from "./live.ts";
import { ChartsPage } from "./pages/charts.ts";
import { ImagePage, ImagesPage } from "./pages/images.ts";
import { MachinePage } from "./pages/machine.ts";
import { Overview } from "./pages/overview.ts";
import { ServicePage } from "./pages/service.ts";
import { SignIn } from "./pages/signin.ts";
import { VolumesPage } from "./pages/volumes.ts";
import { href, useRoute, type Route } from "./router.ts";
import "./style.css";

function App(): VNode {
  const [signedIn, setSignedIn] = useState(() => getToken() !== undefined);
  const [message, setMessage] = useState("");

  useEffect(
    () =>
      onUnauthorized((reason) => {
        live.stop();
        setMessage(reason ? `Signed out: ${reason}` : "Signed out.");
        setSignedIn(false);
      }),
    [],
  );
  useEffect(() => {
    if (!signedIn) return;
    live.start();
    return () => live.stop();
  }, [signedIn]);

  if (!signedIn) {
    return html`<${SignIn} message=${message} onSignedIn=${() => { setMessage(""); setSignedIn(true); }} />`;
  }
  return html`<${Shell} />`;
}

const TITLES: Record<Route["page"], string> = {
  overview: "Overview",
  service: "Service",
  machine: "Machine",
  images: "Images",
  image: "Image",
  volumes: "Volumes",
  charts: "Charts",
  missing: "Not found",
};

function Shell(): VNode {
  const route = useRoute();
  const state = useLive();
  const first = useRef(true);

  // A new page: say so (title) and move focus to its heading, as a page load would.
  useEffect(() => {
    document.title = `${route.name ? `${route.name} · ` : ""}${TITLES[route.page]} · Pith`;
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById("page-title")?.focus();
    window.scrollTo(0, 0);
  }, [route.page, route.name]);

  const current = (page: Route["page"] | Route["page"][]) => ([] as string[]).concat(page).includes(route.page) ? "page" : undefined;
  const connection = { loading: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" }[state.connection];

  return html`<div class="shell">
    <a class="skip-link" href="#main" onClick=${(e: Event) => { e.preventDefault(); document.getElementById("page-title")?.focus(); }}>Skip to content</a>
    <header class="topbar">
      <a class="brand" href=${href.overview}><span class="brand-mark" aria-hidden="true"></span>Pith</a>
      <nav aria-label="Main">
        <ul>
          <li><a href=${href.overview} aria-current=${current(["overview", "service", "machine"])}>Overview</a></li>
          <li><a href=${href.images} aria-current=${current(["images", "image"])}>Images</a></li>
          <li><a href=${href.volumes} aria-current=${current("volumes")}>Volumes</a></li>
          <li><a href=${href.charts} aria-current=${current("charts")}>Charts</a></li>
        </ul>
      </nav>
      <span class=${`connection ${state.connection}`} role="status" title=${state.error || "updates stream from the control plane as they happen"}>${connection}</span>
      <button type="button" class="button small-button" onClick=${() => signOut("")}>Sign out</button>
    </header>
    <main id="main">${page(route)}</main>
  </div>`;
}

function page(route: Route): VNode {
  switch (route.page) {
    case "overview":
      return html`<${Overview} />`;
    case "service":
      return html`<${ServicePage} key=${route.name} name=${route.name!} />`;
    case "machine":
      return html`<${MachinePage} key=${route.name} name=${route.name!} />`;
    case "images":
      return html`<${ImagesPage} />`;
    case "image":
      return html`<${ImagePage} key=${route.name} name=${route.name!} />`;
    case "volumes":
      return html`<${VolumesPage} />`;
    case "charts":
      return html`<${ChartsPage} />`;
    default:
      return html`<div class="page"><h1 id="page-title" tabindex="-1">Not found</h1><p>There is no such page. <a href=${href.overview}>Go to the overview</a>.</p></div>`;
  }
}

render(html`<${App} />`, document.getElementById("app")!);
