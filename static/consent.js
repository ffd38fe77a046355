// Segment's consent tools stamp each event with context.consent.categoryPreferences.
export function consentState(event, requiredCategories) {
  const context = event.context;
  const preferences = context && context.consent && context.consent.categoryPreferences;
  if (!preferences || typeof preferences !== 'object') {
    return 'unknown';
  }
  for (let index = 0; index < requiredCategories.length; index += 1) {
    if (preferences[requiredCategories[index]] !== true) {
      return 'denied';
    }
  }
  return 'granted';
}
