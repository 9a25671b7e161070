"""Running a trained model on images: loading it, finding faces and the Predictor."""
