/** The component name on the DRA driver's Events and in its logs. */
export const COMPONENT_DRA = 'mdevkit-dra';

/** RFC 1123 subdomain, at most 63 characters: what the API accepts as a driver name. */
const DRIVER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Is `name` a DRA driver name the API server accepts (a DNS subdomain of at most 63 characters)? */
export function isDriverName(name: string): boolean {
  return name.length > 0 && name.length <= 63 && DRIVER_NAME.test(name);
}
