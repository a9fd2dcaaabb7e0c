// `npm run demo`: the quick-start job on the embedded tiny models.
export async function runDemo(_opts: { out?: string }): Promise<void> {
  console.log("visionzip-tune demo: training on the embedded tiny models is not yet available (planned: issue 4).");
}
