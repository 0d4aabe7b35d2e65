/**
 * The labels Pith itself puts on objects. Selectors (`pith get -l`), informer indexes and the GUI
 * all read these keys, so each is spelled here once.
 */

/** On a Machine: the Service whose reconciler created it. */
export const SERVICE_LABEL = "pith.dev/service";

/** On an Image: the app's name, shared by every build of it (the object's name adds the digest). */
export const IMAGE_NAME_LABEL = "pith.dev/name";

/** On an Event: the kind of the object it is about, so events can be selected by kind. */
export const INVOLVED_KIND_LABEL = "pith.dev/involved-kind";
