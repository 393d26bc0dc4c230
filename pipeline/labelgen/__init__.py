"""Label generation: step 1 (clustering) and step 2 (refinement) runs, their QA and pages."""
