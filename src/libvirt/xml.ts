/**
 * Small helpers over @xmldom/xmldom for the libvirt XML documents we read and
 * write (domain, domainbackup, domaincheckpoint).
 */
import { DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';

import { LibvirtError } from '../errors.js';

/** Parses XML and throws LibvirtError on any error, naming what was parsed. */
export function parseXml(xml: string, description: string): Document {
  try {
    const document = new DOMParser({
      onError: (level, message) => {
        if (level !== 'warning') throw new Error(message);
      },
    }).parseFromString(xml, 'text/xml');

    if (!document.documentElement) throw new Error('no root element');
    return document;
  } catch (error) {
    throw new LibvirtError(`${description} is not valid XML: ${(error as Error).message}`, {
      hint: 'pass the output of virsh dumpxml unchanged',
      cause: error,
    });
  }
}

export function serializeXml(document: Document): string {
  return new XMLSerializer().serializeToString(document);
}

/** Returns the direct child elements of `parent` with the tag name, in document order. */
export function childElements(parent: Element, tagName: string): Element[] {
  const result: Element[] = [];
  for (let node = parent.firstChild; node !== null; node = node.nextSibling) {
    if (node.nodeType === node.ELEMENT_NODE && (node as Element).tagName === tagName) result.push(node as Element);
  }
  return result;
}

export function firstChild(parent: Element, tagName: string): Element | undefined {
  return childElements(parent, tagName)[0];
}

/** Returns the trimmed text of an element, or undefined when it is missing or empty. */
export function textOf(element: Element | undefined): string | undefined {
  const text = element?.textContent?.trim();
  return text === undefined || text === '' ? undefined : text;
}

export function attributeOf(element: Element | undefined, name: string): string | undefined {
  if (element === undefined || !element.hasAttribute(name)) return undefined;
  return element.getAttribute(name) ?? undefined;
}

/** Escapes text for use in XML content and in attribute values quoted with ' or ". */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
