import { useEffect, useState } from "preact/hooks";

/** Hash routes: #/, #/services/NAME, #/machines/NAME, #/images, #/images/NAME, #/volumes, #/charts. */
export interface Route {
  page: "overview" | "service" | "machine" | "images" | "image" | "volumes" | "charts" | "missing";
  name?: string;
}

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [section, name] = parts;
  if (parts.length === 0) return { page: "overview" };
  if (section === "services" && name) return { page: "service", name };
  if (section === "machines" && name) return { page: "machine", name };
  if (section === "images" && name) return { page: "image", name };
  if (section === "images") return { page: "images" };
  if (section === "volumes") return { page: "volumes" };
  if (section === "charts") return { page: "charts" };
  return { page: "missing" };
}

export const href = {
  overview: "#/",
  service: (name: string) => `#/services/${encodeURIComponent(name)}`,
  machine: (name: string) => `#/machines/${encodeURIComponent(name)}`,
  images: "#/images",
  image: (name: string) => `#/images/${encodeURIComponent(name)}`,
  volumes: "#/volumes",
  charts: "#/charts",
};

export function navigate(to: string): void {
  location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
