import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Page } from "playwright-core";
import type { PithClient } from "../../src/client/index.ts";
import type { StoredImage } from "../../src/image/image-store.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { missingForBrowser, screenshotsDir, TestBrowser } from "../support/browser.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";
import { imageObject } from "../../src/image/image-object.ts";

const skipBrowser = missingForBrowser();
const skip = skipBrowser ?? missingForMachines();
if (skip) process.stderr.write(`web GUI tests skipped: ${skip}\n`);

const BOOT_MS = 120_000;

/** Registers a built image with the control plane, as an Image object (what image-resolver does on first use). */
async function registerImage(client: PithClient, image: StoredImage): Promise<string> {
  const input = imageObject(image);
  await client.create(input);
  return input.metadata.name;
}

async function machinesOf(client: PithClient, service: string): Promise<Machine[]> {
  return (await client.list("Machine", { labels: { "pith.dev/service": service } })).items;
}

/**
 * Records every phase each machine row of the page shows, in order, for as long as the page lives.
 * (A string: tsx would wrap a function's inner functions in a helper the page does not have.)
 */
async function recordPhases(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    window.__phases = {};
    window.__sameDocument = true;
    const record = () => {
      for (const row of document.querySelectorAll("tr[data-machine]")) {
        const seen = (window.__phases[row.dataset.machine] ??= []);
        if (seen[seen.length - 1] !== row.dataset.phase) seen.push(row.dataset.phase);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-phase"] });
  })()`);
}

const readyRows = (page: Page) => page.locator("#service-machines tr[data-machine][data-phase=ready]");

/** A screenshot at 400x800, asserting nothing sticks out sideways; then back to 1280x800. */
async function narrowScreenshot(page: Page, screenshot: (name: string) => Promise<string>, name: string): Promise<void> {
  await page.setViewportSize({ width: 400, height: 800 });
  await page.waitForFunction(() => window.innerWidth === 400);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${name}: nothing sticks out sideways at 400 px (${overflow} px)`);
  await screenshot(name);
  await page.setViewportSize({ width: 1280, height: 800 });
}

describe("web GUI", { skip, timeout: 900_000, concurrency: false }, () => {
  test("sign in, create a service from an image, watch it boot, follow a console, scale, edit, delete", async (t) => {
    const image = await appImage("examples/static-c");
    const { cluster, client } = await TestCluster.start(t);
    const token = readFileSync(join(cluster.home, "token"), "utf8").trim();
    const imageName = await registerImage(client, image);
    const browser = await TestBrowser.launch(t);
    const { page, errors, screenshot } = await browser.newPage();
    try {
      // Before a token: the sign-in form and nothing else.
      await page.goto(`${cluster.url}/`);
      await page.getByLabel("API token").waitFor();
      assert.equal(await page.locator("nav").count(), 0, "no navigation before sign-in");
      const before = await page.locator("body").innerText();
      assert.doesNotMatch(before, /node-a|static-c|Overview|Services|Machines/, "no data before sign-in");
      await screenshot("sign-in");

      await page.getByLabel("API token").fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("pith.token")), token, "the token is kept in sessionStorage");
      await page.locator("#nodes").getByText("node-a").waitFor();
      await page.locator(".connection.live").waitFor();
      await recordPhases(page);

      // The image page: what the image holds, and a form that insists on acknowledging capabilities.
      await page.getByRole("link", { name: "Images", exact: true }).first().click();
      await page.getByRole("link", { name: imageName }).click();
      await page.getByRole("heading", { level: 1, name: new RegExp(imageName) }).waitFor();
      await page.locator("#files").getByText("/app/server", { exact: true }).waitFor();
      assert.match(await page.getByTestId("kernel-options").innerText(), /^\d+ options$/);
      await screenshot("image");
      await narrowScreenshot(page, screenshot, "image-narrow");

      await page.getByLabel("Service name").fill("web");
      await page.getByLabel("Replicas").fill("1");
      const ack = page.getByRole("checkbox", { name: /port 8080/ });
      assert.equal(await ack.isChecked(), false, "capabilities start unacknowledged");
      await page.getByRole("button", { name: "Create service" }).click();
      await page.locator("#ack-error").waitFor();
      assert.equal(await client.get("Service", "web"), undefined, "nothing is created until the capabilities are acknowledged");
      await ack.check();
      await page.getByRole("button", { name: "Create service" }).click();

      // The service page: its machine goes from booting to ready, live.
      await page.getByRole("heading", { level: 1, name: /web/ }).waitFor();
      await readyRows(page).first().waitFor({ timeout: BOOT_MS });
      const [first] = await machinesOf(client, "web");
      assert.ok(first, "the service has a machine");
      const phases = await page.evaluate(() => (window as unknown as { __phases: Record<string, string[]> }).__phases);
      const seen = phases[first.metadata.name] ?? [];
      assert.ok(seen.includes("booting"), `the page showed the machine booting: ${seen.join(" → ")}`);
      assert.equal(seen[seen.length - 1], "ready", `then ready: ${seen.join(" → ")}`);
      assert.ok(seen.indexOf("booting") < seen.lastIndexOf("ready"));

      // The machine page: its console, followed live.
      await page.locator("#service-machines").getByRole("link", { name: first.metadata.name, exact: true }).click();
      await page.getByRole("heading", { level: 1, name: new RegExp(first.metadata.name) }).waitFor();
      await page.getByTestId("console").getByText("static-c: listening on :8080").waitFor({ timeout: 30_000 });
      await page.locator("#boot .timeline-row").nth(3).waitFor();
      await page.locator("#capabilities").getByText(":8080").waitFor();
      await screenshot("machine");
      await narrowScreenshot(page, screenshot, "machine-narrow");

      // Scale to 2 from the service page.
      await page.locator("#main").getByRole("link", { name: "web", exact: true }).first().click();
      await page.getByLabel("Replicas").fill("2");
      await page.getByRole("button", { name: "Scale", exact: true }).click();
      await waitFor(async () => ((await readyRows(page).count()) === 2 ? true : undefined), BOOT_MS, "the page shows 2 ready machines", () => cluster.log());
      assert.equal((await client.get("Service", "web"))?.spec.replicas, 2);
      await page.locator("[data-rollout=complete]").waitFor();
      await screenshot("service");
      await narrowScreenshot(page, screenshot, "service-narrow");

      // Overview, wide and narrow; charts.
      await page.getByRole("link", { name: "Overview", exact: true }).click();
      await page.locator("tr[data-service=web] [data-ready='2']").waitFor();
      await screenshot("overview");
      await narrowScreenshot(page, screenshot, "overview-narrow");
      await page.getByRole("link", { name: "Charts", exact: true }).click();
      await page.locator(`[data-image="${image.record.digest}"] svg rect.bar`).first().waitFor();
      assert.match(await page.locator(`[data-image="${image.record.digest}"] figcaption`).innerText(), /2 machines, median/);
      await screenshot("charts");

      // Edit the manifest: an invalid edit is caught before saving, a valid one saves.
      await page.goto(`${cluster.url}/#/services/web`);
      await page.getByRole("heading", { level: 1, name: /web/ }).waitFor();
      const editor = page.getByLabel("Service manifest (YAML)");
      const original = await editor.inputValue();
      assert.match(original, /replicas: 2/);
      const generation = (await client.get("Service", "web"))!.metadata.generation;
      const replicasLine = original.split("\n").findIndex((l) => l.includes("replicas: 2")) + 1;

      await editor.fill(original.replace("replicas: 2", "replicas: -1"));
      const problems = page.getByTestId("manifest-problems");
      await problems.getByText(`Line ${replicasLine}`, { exact: false }).waitFor();
      assert.match(await problems.innerText(), /spec\.replicas: must be >= 0/);
      const save = page.getByRole("button", { name: "Save manifest" });
      assert.equal(await save.isDisabled(), true, "an invalid manifest cannot be saved");

      await editor.fill(original.replace("replicas: 2", "replicas: [2"));
      await problems.getByText(/Line \d+/).first().waitFor();
      assert.equal(await save.isDisabled(), true);
      assert.equal((await client.get("Service", "web"))!.metadata.generation, generation, "nothing was saved");

      await editor.fill(original.replace(/\nspec:\n/, "\nspec:\n  env:\n    GREETING: hello from the GUI\n"));
      await page.waitForFunction(() => document.querySelector('[data-testid="manifest-problems"]') === null).catch(async (e: Error) => {
        // Say which problems the editor still shows, not only that it timed out.
        throw new Error(`the manifest still has problems: ${await problems.innerText().catch(() => "?")}\n${await editor.inputValue()}`, { cause: e });
      });
      await save.click();
      await page.getByText(/Saved: generation \d+/).waitFor();
      const saved = await client.get("Service", "web");
      assert.equal(saved?.spec.env?.GREETING, "hello from the GUI");
      assert.equal(saved?.spec.replicas, 2);

      // The env change rolled the machines: the rollout panel lists it as revision 2, by its key
      // alone; Undo returns to revision 1's template, which becomes revision 3.
      const rollout = page.locator("#rollout");
      const current = (revision: number) => rollout.locator(`tr[data-revision="${revision}"][aria-current=true]`);
      await current(2).waitFor({ timeout: BOOT_MS });
      assert.match(await current(2).innerText(), /env GREETING/);
      assert.ok(!(await rollout.innerText()).includes("hello from the GUI"), "the panel names env keys, not values");
      await page.locator("[data-rollout=complete]").waitFor({ timeout: BOOT_MS });
      await rollout.getByRole("button", { name: "Undo", exact: true }).click();
      await current(3).waitFor({ timeout: 30_000 });
      assert.equal((await client.get("Service", "web"))?.spec.env?.GREETING, undefined, "undo restored revision 1's env");
      await page.locator("[data-rollout=complete]").waitFor({ timeout: BOOT_MS });
      await screenshot("service-rollout");

      // Delete, confirmed in a dialog; the service disappears from the overview.
      await page.getByRole("button", { name: "Delete service…" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Delete web" }).click();
      await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
      await waitFor(async () => ((await page.locator("tr[data-service=web]").count()) === 0 ? true : undefined), 30_000, "the service leaves the overview");
      await waitFor(async () => ((await page.locator("#machines tbody tr").count()) === 0 ? true : undefined), 60_000, "its machines leave the overview", () => cluster.log());
      assert.equal(await client.get("Service", "web"), undefined);
      await waitFor(async () => (cluster.qemuPids("node-a").length === 0 ? true : undefined), 60_000, "every VM is gone");

      assert.equal(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument), true, "the page was never reloaded");
      assert.deepEqual(errors, [], "no errors in the browser console");
    } catch (error) {
      await screenshot("failure-flow").catch(() => {});
      throw error;
    }
    process.stderr.write(`screenshots in ${screenshotsDir()}\n`);
  });

  test("the manifest editor saves what the API accepts: startMode snapshot", { skip: skipBrowser }, async (t) => {
    // No agent and no machines: a service of zero replicas is all the editor needs.
    const cluster = await TestCluster.create(t);
    await cluster.startServer();
    const client = cluster.client();
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "snap" }, spec: { image: "static-c", replicas: 0 } });
    const browser = await TestBrowser.launch(t);
    const { page, errors } = await browser.newPage();

    await page.goto(`${cluster.url}/#/services/snap`);
    await page.getByLabel("API token").fill(readFileSync(join(cluster.home, "token"), "utf8").trim());
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: /snap/ }).waitFor();
    // The scale form asks the API's schema too: out of range is refused before anything is sent.
    await page.getByLabel("Replicas").fill("1001");
    await page.getByRole("button", { name: "Scale", exact: true }).click();
    await page.locator("#scale-message").getByText("Replicas must be <= 1000").waitFor();
    assert.equal((await client.get("Service", "snap"))?.metadata.generation, 1, "nothing was sent");

    const editor = page.getByLabel("Service manifest (YAML)");
    const original = await editor.inputValue();
    assert.match(original, /replicas: 0/);

    // What the GUI's own copy of the rules once refused: caught as you type if wrong, saved if right.
    await editor.fill(original.replace("replicas: 0", "replicas: 0\n  startMode: snapshots"));
    const problems = page.getByTestId("manifest-problems");
    await problems.getByText(/spec\.startMode/).waitFor();
    assert.match(await problems.innerText(), /must be one of "boot", "snapshot"/);
    const save = page.getByRole("button", { name: "Save manifest" });
    assert.equal(await save.isDisabled(), true);

    await editor.fill(original.replace("replicas: 0", "replicas: 0\n  startMode: snapshot"));
    await page.waitForFunction(() => document.querySelector('[data-testid="manifest-problems"]') === null);
    await save.click();
    await page.getByText(/Saved: generation \d+/).waitFor();
    const saved = await client.get("Service", "snap");
    assert.equal(saved?.spec.startMode, "snapshot");
    assert.equal(saved?.spec.replicas, 0);
    assert.match(await editor.inputValue(), /startMode: snapshot/, "the editor shows what was saved");
    assert.deepEqual(errors, [], "no errors in the browser console");
  });

  test("volumes: see what is kept, where and by whom; delete a free one, never a held one", { skip: skipBrowser }, async (t) => {
    const cluster = await TestCluster.create(t);
    await cluster.startServer();
    const client = cluster.client();
    const volume = (name: string) => ({ apiVersion: "pith.dev/v1" as const, kind: "Volume" as const, metadata: { name }, spec: { sizeMiB: 64, node: "n1" } });
    await client.create(volume("db-data-0"));
    await client.create(volume("old-data-0"));
    await client.create({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "db-1" }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: "n1" } });
    const held = await client.get("Volume", "db-data-0");
    await client.updateStatus("Volume", "db-data-0", { attachedTo: "db-1", node: "n1", created: true }, held!.metadata.resourceVersion);
    const browser = await TestBrowser.launch(t);
    const { page, errors } = await browser.newPage();

    await page.goto(`${cluster.url}/#/volumes`);
    await page.getByLabel("API token").fill(readFileSync(join(cluster.home, "token"), "utf8").trim());
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Volumes" }).waitFor();
    const heldRow = page.locator('tr[data-volume="db-data-0"]');
    await heldRow.getByRole("link", { name: "db-1" }).waitFor();
    assert.equal(await heldRow.getAttribute("data-held"), "true");
    assert.equal(await heldRow.getByRole("button").count(), 0, "a held volume offers no delete");
    assert.match(await heldRow.innerText(), /64 MiB/);

    const freeRow = page.locator('tr[data-volume="old-data-0"]');
    assert.match(await freeRow.innerText(), /free/);
    await freeRow.getByRole("button", { name: "Delete…" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete volume old-data-0?" });
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.ok(await client.get("Volume", "old-data-0"), "cancel deletes nothing");
    await freeRow.getByRole("button", { name: "Delete…" }).click();
    await dialog.getByRole("button", { name: "Delete old-data-0" }).click();
    await freeRow.waitFor({ state: "detached" });
    assert.equal(await client.get("Volume", "old-data-0"), undefined);
    assert.ok(await client.get("Volume", "db-data-0"));
    assert.deepEqual(errors, [], "no errors in the browser console");
  });

  test("keyboard only: sign in, move between pages, see where the focus is", { skip: skipBrowser }, async (t) => {
    const cluster = await TestCluster.create(t);
    await cluster.startServer();
    const token = readFileSync(join(cluster.home, "token"), "utf8").trim();
    const browser = await TestBrowser.launch(t);
    const { page, errors } = await browser.newPage();

    // The GUI is open; the API behind it is not.
    assert.equal((await fetch(`${cluster.url}/`)).status, 200);
    assert.equal((await fetch(`${cluster.url}/ui/app.js`)).status, 200);
    assert.equal((await fetch(`${cluster.url}/api/v1/services`)).status, 401);

    await page.goto(`${cluster.url}/`);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "token", "the token field comes first");
    await page.keyboard.type(token);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();

    // Tab to the Charts link and follow it with Enter; the new page's heading gets the focus.
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = (await page.evaluate(() => document.activeElement?.textContent)) === "Charts";
    }
    assert.ok(reached, "the Charts link is reachable with Tab");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    assert.notEqual(outline, "none", "the focused link shows a focus ring");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { level: 1, name: "Charts" }).waitFor();
    await waitFor(async () => ((await page.evaluate(() => document.activeElement?.id)) === "page-title" ? true : undefined), 5000, "focus moves to the new page's heading");

    // Sign out with the keyboard: back to the form, and the token is forgotten.
    await page.getByRole("button", { name: "Sign out" }).focus();
    await page.keyboard.press("Enter");
    await page.getByLabel("API token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("pith.token")), null);
    assert.deepEqual(errors, [], "no errors in the browser console");
  });
});
