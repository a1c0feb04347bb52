"""The pages app: screens that assemble several apps (the marketplace's models, onboarding jobs,
images and deployments) into what a person sees. The only code that may import every app; the apps
themselves import downwards only: acumos_portal <- marketplace <- images <- onboarding, deployment."""
